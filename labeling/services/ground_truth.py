"""Ground truth and its append-only history.

Every change of an item's ground truth appends a LabelChange with a per-project `seq`, taken from
one counter row per project as the *last* write of the transaction: its row lock is held until
commit, so numbers become visible in commit order and a reader paging with `since=<seq>` never
skips a change that commits late (an auto-increment id, allocated before commit, would).
A withdrawn label (ground_truth_retract) is a change too: label "", method "retracted".

Raw SQL: the counter is taken with UPDATE ... RETURNING, and large batches on PostgreSQL upsert
from a COPY with INSERT ... ON CONFLICT; the ORM says neither (nor an id list as one array).
"""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from common.db import is_postgres
from common.db.columns import array_literal
from common.db.copy import copy_rows
from common.db.locks import lock_rows
from common.db.sql import execute, execute_many, fetchone, table
from labeling.models import GroundTruth, GroundTruthMethod, Item, ItemStatus, LabelChange, LabelSequence
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
    decided_at: datetime | None = None  # when the decision was made (a restored one keeps its own); defaults to now


@dataclass(frozen=True)
class GroundTruthChange:
    item_id: int
    label: str
    previous_label: str
    method: str
    seq: int


def label_seq_reserve(*, project_id: int, count: int) -> int:
    """Reserve `count` sequence numbers; returns the first. Call last in the transaction."""
    sql = f"UPDATE {table(LabelSequence)} SET last_seq = last_seq + %s WHERE project_id = %s RETURNING last_seq"
    row = fetchone(sql, [count, project_id])
    if row is None:  # projects made before the counter existed: create it, then retry once
        LabelSequence.objects.get_or_create(project_id=project_id)
        row = fetchone(sql, [count, project_id])
    return row[0] - count + 1


def _announce(project_id, changes):
    ground_truth_changed.send(sender=Item, project_id=project_id, changes=changes)


@dataclass
class _Current:
    label: str
    method: str


# From this many decisions on, PostgreSQL gets set-based statements fed by COPY instead of the ORM's
# bulk_create / bulk_update, whose per-row query compilation dominates large batches.
SQL_PATH_MIN = 200


def _items_in(ids, *, bulk: bool):
    """A filter on Item's primary key: on the bulk path `id = ANY(<one array parameter>)`, where `pk__in`
    would send one placeholder per id."""
    if bulk:
        ids = [array_literal(sorted(ids))]
        return RawSQL(f"{table(Item)}.id = ANY(%s::bigint[])", ids, output_field=BooleanField())
    return Q(pk__in=ids)


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
    bulk = is_postgres() and len(decisions) >= SQL_PATH_MIN
    lock_rows(Item.objects.filter(_items_in(item_ids, bulk=bulk), project_id=project_id))
    external_ids, current = {}, {}
    for pk, item_project, external_id, label, method in Item.objects.filter(_items_in(item_ids, bulk=bulk)).values_list(
        "pk", "project_id", "external_id", "ground_truth__label", "ground_truth__method"
    ):
        if item_project == project_id:
            external_ids[pk] = external_id
        if label is not None:
            current[pk] = _Current(label, method)
    existing = set(current)

    pending, status_by_item = [], {}
    for d in decisions:
        gt = current.get(d.item_id)
        status_by_item[d.item_id] = d.status
        if gt is not None and gt.label == d.label and gt.method == d.method:
            continue
        current[d.item_id] = _Current(d.label, d.method)
        pending.append((d, gt.label if gt is not None else ""))

    _write_ground_truth(decisions=[d for d, _ in pending], existing=existing, actor=actor, now=now, bulk=bulk)
    by_status = {}
    for item_id, status in status_by_item.items():
        by_status.setdefault(status, []).append(item_id)
    for status, ids in by_status.items():
        Item.objects.filter(_items_in(ids, bulk=bulk)).update(status=status, updated_at=now)

    return _append_history(
        project_id=project_id, pending=pending, external_ids=external_ids, actor=actor, now=now, bulk=bulk
    )


def _append_history(
    *, project_id: int, pending: list, external_ids: dict, actor, now, bulk: bool
) -> list[GroundTruthChange]:
    """Append one LabelChange per (Decision, previous label) of `pending`, numbered from the project's
    counter. This is the transaction's last write (see the module doc): callers write everything else
    first. Announces the changes after commit; returns them in seq order."""
    if not pending:
        return []
    first = label_seq_reserve(project_id=project_id, count=len(pending))
    if bulk:
        actor_id = actor.pk if actor is not None else None
        copy_rows(
            table(LabelChange),
            _CHANGE_COLUMNS,
            (
                (
                    project_id,
                    first + i,
                    d.item_id,
                    external_ids.get(d.item_id, ""),
                    d.label,
                    previous,
                    d.method,
                    d.score,
                    actor_id,
                    json.dumps(list(d.annotators)),
                    d.model_version,
                    d.source,
                    d.note,
                    now,
                )
                for i, (d, previous) in enumerate(pending)
            ),
        )
    else:
        LabelChange.objects.bulk_create(
            [
                LabelChange(
                    project_id=project_id,
                    seq=first + i,
                    item_id=d.item_id,
                    external_id=external_ids.get(d.item_id, ""),
                    label=d.label,
                    previous_label=previous,
                    method=d.method,
                    score=d.score,
                    actor=actor,
                    annotators=list(d.annotators),
                    model_version=d.model_version,
                    source=d.source,
                    note=d.note,
                    changed_at=now,
                )
                for i, (d, previous) in enumerate(pending)
            ]
        )
    changes = [
        GroundTruthChange(d.item_id, d.label, previous, d.method, first + i) for i, (d, previous) in enumerate(pending)
    ]
    transaction.on_commit(partial(_announce, project_id, changes))
    return changes


@transaction.atomic
def ground_truth_retract(
    *, item: Item, actor=None, status: str = ItemStatus.DISPUTED, note: str = "", source: str = ""
) -> GroundTruthChange | None:
    """Withdraw an item's ground truth: its GroundTruth row is deleted, the item takes `status`, and the
    history gets a retraction (label "", previous_label the withdrawn label, method "retracted"). None
    when the item has no ground truth (nothing is written)."""
    lock_rows(Item.objects.filter(pk=item.pk))
    row = Item.objects.filter(pk=item.pk).values_list("project_id", "external_id", "ground_truth__label").first()
    if row is None or row[2] is None:
        return None
    project_id, external_id, label = row
    now = timezone.now()
    GroundTruth.objects.filter(item_id=item.pk).delete()
    Item.objects.filter(pk=item.pk).update(status=status, updated_at=now)
    retraction = Decision(item.pk, "", GroundTruthMethod.RETRACTED, note=note, source=source, status=status)
    changes = _append_history(
        project_id=project_id,
        pending=[(retraction, label)],
        external_ids={item.pk: external_id},
        actor=actor,
        now=now,
        bulk=False,
    )
    return changes[0]


_CHANGE_COLUMNS = [
    "project_id",
    "seq",
    "item_id",
    "external_id",
    "label",
    "previous_label",
    "method",
    "score",
    "actor_id",
    "annotators",
    "model_version",
    "source",
    "note",
    "changed_at",
]
_GT_FIELDS = ["label", "method", "score", "decided_by", "decided_at", "source", "note"]


def _write_ground_truth(*, decisions: list[Decision], existing: set, actor, now, bulk: bool) -> None:
    """Write the ground truth rows of `decisions` (in order: a later decision on the same item wins).
    A new row keeps the arrival of the first decision on its item; an existing one keeps its own."""
    if not decisions:
        return
    last = {d.item_id: d for d in decisions}
    arrived = {}
    for d in decisions:
        arrived.setdefault(d.item_id, d.arrived_at or now)
    if bulk:
        _upsert_ground_truth_sql(last=last, arrived=arrived, actor=actor, now=now)
        return
    rows = {
        item_id: GroundTruth(
            item_id=item_id,
            label=d.label,
            method=d.method,
            score=d.score,
            decided_by=actor,
            decided_at=d.decided_at or now,
            source=d.source,
            note=d.note,
            first_arrived_at=arrived[item_id],
        )
        for item_id, d in last.items()
    }
    to_create = [gt for item_id, gt in rows.items() if item_id not in existing]
    to_update = [gt for item_id, gt in rows.items() if item_id in existing]
    if to_create:
        GroundTruth.objects.bulk_create(to_create)
    if to_update:
        GroundTruth.objects.bulk_update(to_update, _GT_FIELDS)


def _upsert_ground_truth_sql(*, last: dict, arrived: dict, actor, now) -> None:
    """Upsert the rows from one COPY into a temporary table; first_arrived_at is kept where a row exists."""
    execute_many(
        [
            ("DROP TABLE IF EXISTS pg_temp.gt_decisions", ()),
            (
                "CREATE TEMP TABLE gt_decisions (item_id bigint, label text, method text, score float8, "
                "source text, note text, first_arrived_at timestamptz, decided_at timestamptz) ON COMMIT DROP",
                (),
            ),
        ]
    )
    copy_rows(
        "gt_decisions",
        ["item_id", "label", "method", "score", "source", "note", "first_arrived_at", "decided_at"],
        (
            (d.item_id, d.label, d.method, d.score, d.source, d.note, arrived[d.item_id], d.decided_at or now)
            for d in last.values()
        ),
    )
    execute(
        f"INSERT INTO {table(GroundTruth)} AS g "
        "(item_id, label, method, score, decided_by_id, decided_at, source, note, first_arrived_at) "
        "SELECT item_id, label, method, score, %s, decided_at, source, note, first_arrived_at FROM gt_decisions "
        "ORDER BY item_id ON CONFLICT (item_id) DO UPDATE SET label = EXCLUDED.label, method = EXCLUDED.method, "
        "score = EXCLUDED.score, decided_by_id = EXCLUDED.decided_by_id, decided_at = EXCLUDED.decided_at, "
        "source = EXCLUDED.source, note = EXCLUDED.note",
        [actor.pk if actor is not None else None],
    )


def ground_truth_set(
    *,
    item: Item,
    label: str,
    method: str,
    actor=None,
    score=None,
    annotators=(),
    note="",
    source="",
    model_version="",
    arrived_at=None,
    status=ItemStatus.RESOLVED,
    decided_at=None,
):
    changes = ground_truth_set_many(
        project_id=item.project_id,
        decisions=[
            Decision(
                item.pk,
                label,
                method,
                score,
                tuple(annotators),
                note,
                source,
                model_version,
                arrived_at,
                status,
                decided_at,
            )
        ],
        actor=actor,
    )
    return changes[0] if changes else None
