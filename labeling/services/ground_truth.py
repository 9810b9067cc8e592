"""Ground truth and its append-only history.

Every change of an item's ground truth appends a LabelChange with a per-project `seq`. The
sequence comes from one counter row per project, incremented as the *last* write of the
transaction: the counter's row lock is held until commit, so a later transaction can only take
a higher number after the earlier one committed. Numbers therefore become visible in commit
order, and a reader paging with `since=<seq>` never skips a change that commits late (an
ordinary auto-increment id does not give this: ids are allocated before commit).
"""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from common.db import is_postgres
from common.db.columns import array_literal
from common.db.copy import copy_rows
from labeling.models import GroundTruth, Item, ItemStatus, LabelChange, LabelSequence
from labeling.signals import ground_truth_changed


@dataclass(frozen=True)
class Decision:
    item_id: int
    label: str
    method: str
    score: float | None = None
    annotators: tuple = ()
    note: str = ""
    source: str = ""
    model_version: str = ""
    arrived_at: datetime | None = None  # when the truth was observed (imports); defaults to now
    status: str = ItemStatus.RESOLVED


@dataclass(frozen=True)
class GroundTruthChange:
    item_id: int
    label: str
    previous_label: str
    method: str
    seq: int


def label_seq_reserve(*, project_id: int, count: int) -> int:
    """Reserve `count` sequence numbers; returns the first. Call last in the transaction."""
    table = LabelSequence._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {table} SET last_seq = last_seq + %s WHERE project_id = %s RETURNING last_seq",
            [count, project_id],
        )
        row = cur.fetchone()
        if row is None:  # projects made before the counter existed: create it, then retry once
            LabelSequence.objects.get_or_create(project_id=project_id)
            cur.execute(
                f"UPDATE {table} SET last_seq = last_seq + %s WHERE project_id = %s RETURNING last_seq",
                [count, project_id],
            )
            row = cur.fetchone()
    return row[0] - count + 1


def _announce(project_id, changes):
    ground_truth_changed.send(sender=Item, project_id=project_id, changes=changes)


@dataclass
class _Current:
    label: str
    method: str


# From this many decisions on, PostgreSQL gets set-based statements fed by COPY instead of the ORM's
# bulk_create / bulk_update, whose query compilation alone cost ~200 µs per item (a quality run that
# accepted 150,000 items spent 30 s there).
SQL_PATH_MIN = 200


@transaction.atomic
def ground_truth_set_many(*, project_id: int, decisions: list[Decision], actor=None) -> list[GroundTruthChange]:
    """Set the ground truth of many items of one project in one transaction.

    A decision that repeats the current label with the same method is a no-op (no history row).
    Returns the changes written, in seq order.
    """
    if not decisions:
        return []
    now = timezone.now()
    item_ids = sorted({d.item_id for d in decisions})
    sql = is_postgres() and len(decisions) >= SQL_PATH_MIN
    # Lock the items in primary-key order so concurrent writers never deadlock.
    if sql:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT id, external_id FROM {Item._meta.db_table} WHERE id = ANY(%s::bigint[]) AND project_id = %s "
                f"ORDER BY id FOR UPDATE", [array_literal(item_ids), project_id],
            )
            external_ids = dict(cur.fetchall())
            cur.execute(f"SELECT item_id, label, method FROM {GroundTruth._meta.db_table} WHERE item_id = ANY(%s::bigint[])",
                        [array_literal(item_ids)])
            current = {item_id: _Current(label, method) for item_id, label, method in cur.fetchall()}
    else:
        external_ids = dict(
            Item.objects.select_for_update().filter(pk__in=item_ids, project_id=project_id).order_by("pk")
            .values_list("pk", "external_id")
        )
        current = {gt.item_id: gt for gt in GroundTruth.objects.filter(item_id__in=item_ids)}

    to_create, to_update, pending = [], [], []
    status_by_item = {}
    for d in decisions:
        gt = current.get(d.item_id)
        if gt is not None and gt.label == d.label and gt.method == d.method:
            status_by_item[d.item_id] = d.status
            continue
        previous = gt.label if gt is not None else ""
        if sql:  # rows are written from the decisions themselves
            current[d.item_id] = _Current(d.label, d.method)
        elif gt is None:
            gt = GroundTruth(
                item_id=d.item_id, label=d.label, method=d.method, score=d.score, decided_by=actor,
                decided_at=now, source=d.source, note=d.note, first_arrived_at=d.arrived_at or now,
            )
            current[d.item_id] = gt
            to_create.append(gt)
        else:
            gt.label, gt.method, gt.score, gt.decided_by = d.label, d.method, d.score, actor
            gt.decided_at, gt.source, gt.note = now, d.source, d.note
            if gt not in to_update and gt not in to_create:
                to_update.append(gt)
        status_by_item[d.item_id] = d.status
        pending.append((d, previous))

    if sql:
        _write_ground_truth_sql(decisions=[d for d, _ in pending], actor=actor, now=now)
    else:
        if to_create:
            GroundTruth.objects.bulk_create(to_create)
        if to_update:
            GroundTruth.objects.bulk_update(
                to_update, ["label", "method", "score", "decided_by", "decided_at", "source", "note"]
            )
    by_status = {}
    for item_id, status in status_by_item.items():
        by_status.setdefault(status, []).append(item_id)
    for status, ids in by_status.items():
        if sql:
            with connection.cursor() as cur:
                cur.execute(f"UPDATE {Item._meta.db_table} SET status = %s, updated_at = %s WHERE id = ANY(%s::bigint[])",
                            [status, now, array_literal(sorted(ids))])
        else:
            Item.objects.filter(pk__in=ids).update(status=status, updated_at=now)

    if not pending:
        return []
    first = label_seq_reserve(project_id=project_id, count=len(pending))  # last write: see module doc
    if sql:
        actor_id = actor.pk if actor is not None else None
        copy_rows(LabelChange._meta.db_table, _CHANGE_COLUMNS, (
            (project_id, first + i, d.item_id, external_ids.get(d.item_id, ""), d.label, previous, d.method, d.score,
             actor_id, json.dumps(list(d.annotators)), d.model_version, d.source, d.note, now)
            for i, (d, previous) in enumerate(pending)
        ))
    else:
        LabelChange.objects.bulk_create([
            LabelChange(
                project_id=project_id, seq=first + i, item_id=d.item_id, external_id=external_ids.get(d.item_id, ""),
                label=d.label, previous_label=previous,
                method=d.method, score=d.score, actor=actor, annotators=list(d.annotators),
                model_version=d.model_version, source=d.source, note=d.note, changed_at=now,
            )
            for i, (d, previous) in enumerate(pending)
        ])
    changes = [GroundTruthChange(d.item_id, d.label, previous, d.method, first + i) for i, (d, previous) in enumerate(pending)]
    transaction.on_commit(partial(_announce, project_id, changes))
    return changes


_CHANGE_COLUMNS = ["project_id", "seq", "item_id", "external_id", "label", "previous_label", "method", "score",
                   "actor_id", "annotators", "model_version", "source", "note", "changed_at"]


def _write_ground_truth_sql(*, decisions: list[Decision], actor, now) -> None:
    """Upsert the ground truth rows of `decisions` (in order: a later decision on the same item wins)
    from one COPY; first_arrived_at is kept where a row exists."""
    if not decisions:
        return
    last = {d.item_id: d for d in decisions}
    arrived = {}
    for d in decisions:  # a row created by the first decision on an item keeps that decision's arrival
        arrived.setdefault(d.item_id, d.arrived_at or now)
    actor_id = actor.pk if actor is not None else None
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS pg_temp.gt_decisions")
        cur.execute("CREATE TEMP TABLE gt_decisions (item_id bigint, label text, method text, score float8, "
                    "source text, note text, first_arrived_at timestamptz) ON COMMIT DROP")
    copy_rows("gt_decisions", ["item_id", "label", "method", "score", "source", "note", "first_arrived_at"], (
        (d.item_id, d.label, d.method, d.score, d.source, d.note, arrived[d.item_id]) for d in last.values()
    ))
    table = GroundTruth._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} AS g (item_id, label, method, score, decided_by_id, decided_at, source, note, first_arrived_at) "
            f"SELECT item_id, label, method, score, %s, %s, source, note, first_arrived_at FROM gt_decisions ORDER BY item_id "
            f"ON CONFLICT (item_id) DO UPDATE SET label = EXCLUDED.label, method = EXCLUDED.method, score = EXCLUDED.score, "
            f"decided_by_id = EXCLUDED.decided_by_id, decided_at = EXCLUDED.decided_at, source = EXCLUDED.source, "
            f"note = EXCLUDED.note",
            [actor_id, now],
        )


def ground_truth_set(*, item: Item, label: str, method: str, actor=None, score=None, annotators=(), note="",
                     source="", model_version="", arrived_at=None, status=ItemStatus.RESOLVED):
    changes = ground_truth_set_many(
        project_id=item.project_id,
        decisions=[Decision(item.pk, label, method, score, tuple(annotators), note, source, model_version, arrived_at, status)],
        actor=actor,
    )
    return changes[0] if changes else None
