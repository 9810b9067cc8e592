"""Row locks taken in one order. Two transactions that lock overlapping sets of rows in different
orders can deadlock; every writer that locks several rows of a table takes them in primary-key
order, through here."""

from __future__ import annotations


def lock_rows(queryset, *, of=None) -> list:
    """SELECT ... FOR UPDATE of `queryset`'s rows in primary-key order; returns their primary keys.
    `of` names the tables to lock, as select_for_update(of=...) does (for a queryset with joins)."""
    qs = queryset.select_for_update(**({"of": of} if of else {})).order_by("pk")
    return list(qs.values_list("pk", flat=True))
