"""Carrying out a quality run's plan: ground truth for accepted items, requests for one more
annotation (ReopenRequest), status moves for doubted single labels, then per-item results and
annotator statistics, in chunks (on two side connections where common.db.parallel allows).

An item that changed since the snapshot is left alone and recorded "stale": accepted and moved
items are locked and compared first; requests lock nothing, and one scan from the snapshot's
xmin horizon finds the items that changed meanwhile (_changed). Long because each write keeps its
stale-row check next to it, and each has a portable path for the SQLite demo.

Raw SQL: row xmin compares, a compare-and-set UPDATE ... FROM a temporary table of moves (its
join plan pinned) and synchronous_commit, which the ORM cannot say.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import pandas as pd
from django.db import OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from common.db import is_postgres, sql
from common.db.columns import array_literal, label_case, read_columns
from common.db.copy import copy_arrays, temp_table_from_arrays
from common.db.locks import lock_rows
from common.db.parallel import start_calls
from labeling.models import (
    GroundTruthMethod,
    Item,
    ItemStatus,
    QualityAnnotatorStat,
    QualityItemResult,
    QualityOutcome,
    ReopenRequest,
)
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.quality.plan import Plan
from labeling.services.quality.review import review_sends_record
from labeling.services.quality.snapshot import STATUSES, Snapshot
from labeling.stats import consensus

logger = logging.getLogger(__name__)

WRITE_CHUNK = 5000
REQUEST_CHUNK = 20_000  # requests per transaction: no item row locked, so larger chunks cost nothing in waiting
RESULT_PARTS = 4  # statements (transactions) the per-item results go in with (see write_plan)
DEADLOCK_DETECTED = "40P01"
OUTCOMES = list(QualityOutcome.values)


def write_plan(run, snap: Snapshot, scores: consensus.CrowdScores, plan: Plan) -> np.ndarray:
    """Apply the plan, item by item only where nobody acted since the snapshot; then record every
    item's result (with "stale" where a person got there first) and the annotator statistics.
    Returns each item's outcome as recorded.

    The per-item results depend on the item writes only for the few items found stale: they go in
    with the planned outcome (on the same side connections as the accepts and the requests, where
    those are usable), and the stale ones are re-marked afterwards."""
    QualityItemResult.objects.filter(run_id=run.pk).delete()  # a re-executed run starts over
    parts = np.array_split(np.arange(len(snap.item_ids)), RESULT_PARTS)
    stale = _apply_plan(
        run,
        snap,
        scores,
        plan,
        alongside=[
            partial(_insert_results, run.pk, snap, scores, plan.outcome, rows, p_right=plan.p_right) for rows in parts
        ],
    )
    if stale.any():
        QualityItemResult.objects.filter(run_id=run.pk, item_id__in=snap.item_ids[stale].tolist()).update(
            outcome=QualityOutcome.STALE
        )
    _write_annotator_stats(run.pk, snap, scores)
    return np.where(stale, QualityOutcome.STALE.value, plan.outcome)


def _apply_plan(run, snap: Snapshot, scores: consensus.CrowdScores, plan: Plan, alongside=()) -> np.ndarray:
    """Accept, reopen or send to review as planned; returns the mask of items found stale.
    `alongside`: more calls for the same two writers (the per-item results)."""
    outcome = plan.outcome
    stale = np.zeros(len(outcome), dtype=bool)
    act = plan.actionable
    accepted = np.nonzero(act & (outcome == QualityOutcome.ACCEPTED))[0]
    reopened = act & (outcome == QualityOutcome.REOPENED)
    # A disputed item is not rewritten: the run records a request for one more annotation, and the
    # queue opens the item when an annotator reaches it (see ReopenRequest). The accept chunks, the
    # request chunks and the per-item results (`alongside`) all go on two side connections, each
    # taking the next call left, the larger first: with more writers at once they queued on the WAL
    # and on the cores.
    # Chunks hold disjoint items, and requests and results lock no item row, so no two calls wait
    # for each other; the per-project label sequence, reserved last in each accept chunk, orders
    # their commits.
    requested = np.nonzero(reopened & (snap.status == ItemStatus.DISPUTED))[0]
    review = act & (outcome == QualityOutcome.REVIEW)
    stays = np.nonzero(review & (snap.status == ItemStatus.DISPUTED))[0]  # nothing to write: report it as it is now
    # The items that get no row lock (requests, review as it is): which changed since the snapshot.
    unlocked = np.concatenate([requested, stays])
    stale[unlocked] = _changed(snap, unlocked)
    replace = ReopenRequest.objects.filter(
        project_id=snap.project_id
    ).exists()  # (only runs add requests: one at a time)
    accept = [partial(_accept_chunk, run, snap, scores, idx) for idx in _chunks(accepted, WRITE_CHUNK)]
    request = [
        partial(_request_chunk, snap, idx, rank=scores.active_learning[idx], replace=replace, stale=stale[idx])
        for idx in _chunks(requested, REQUEST_CHUNK)
    ]
    values = start_calls([*accept, *alongside, *request])()
    for idx, chunk_stale in zip(_chunks(accepted, WRITE_CHUNK), values[: len(accept)]):
        stale[idx] = chunk_stale
    # A doubted single label (its item resolved) goes back to the queue at once.
    single = np.nonzero(reopened & (snap.status != ItemStatus.DISPUTED))[0]
    for idx in _chunks(single, 2 * WRITE_CHUNK):
        stale[idx] = _set_status_chunk(
            snap,
            idx,
            status=ItemStatus.OPEN,
            reopen_rank=scores.active_learning[idx],
            queue_order=run.project.queue_order,
        )
    moved = np.nonzero(review & (snap.status != ItemStatus.DISPUTED))[0]  # a doubted single label goes to review
    sent = {
        "actor": run.requested_by,
        "source": f"quality-run:{run.pk}",
        "reason": f"Quality run #{run.pk} doubted the label: a reviewer decides.",
    }
    for idx in _chunks(moved, 4 * WRITE_CHUNK):
        stale[idx] = _set_status_chunk(snap, idx, status=ItemStatus.DISPUTED, sent=sent)
    return stale


def _chunks(idx: np.ndarray, size: int):
    for start in range(0, len(idx), size):
        yield idx[start : start + size]


# --- is the item still as the snapshot saw it? ---------------------------------------------------


def _unchanged(snap: Snapshot, idx: np.ndarray, *, lock: bool) -> np.ndarray:
    """Which of these items are exactly as the snapshot saw them (optionally locking them first, in
    primary-key order). Compared: status and counters, and on PostgreSQL the row's xmin, which any
    other transaction's update changes (ground truth is only ever set together with the item's
    status, see labeling.services.ground_truth); elsewhere the ground truth itself. An item gone
    since counts as changed."""
    ids = snap.item_ids[idx]
    if lock:
        lock_rows(Item.objects.filter(pk__in=ids.tolist()))
    if is_postgres():
        found, differs = _compare_with_snapshot(snap, "i.id = ANY(%s::bigint[])", [array_literal(ids)])
        ok = np.zeros(len(snap.item_ids), dtype=bool)
        ok[found] = ~differs
        return ok[idx]
    now = {
        row[0]: row[1:]
        for row in Item.objects.filter(pk__in=ids.tolist()).values_list(
            "pk", "status", "required_annotations", "annotation_count", "ground_truth__label", "ground_truth__method"
        )
    }
    return np.array(
        [
            now.get(int(snap.item_ids[i]))
            == (
                snap.status[i],
                int(snap.required[i]),
                int(snap.annotation_count[i]),
                snap.gt_label[i] or None,
                snap.gt_method[i] or None,
            )
            for i in idx
        ],
        dtype=bool,
    )


def _changed(snap: Snapshot, idx: np.ndarray) -> np.ndarray:
    """Which of these items changed since the snapshot (a mask over `idx`), without locking them.

    With the snapshot's xmin horizon (PostgreSQL, a run outside a transaction), one scan of the
    project's items picks the rows written by a transaction the snapshot may not have seen (age of
    xmin no older than the horizon's: the few items touched while the run scored), and only those
    are compared with the snapshot, as _unchanged does. A row version older than the horizon was
    committed before the snapshot, which therefore saw it: unchanged. (One scan of the project costs
    less than reading every item by its primary key, as _unchanged does.)"""
    if snap.xmin_horizon is None:
        return ~_unchanged(snap, idx, lock=False)
    found, differs = _compare_with_snapshot(
        snap, "i.project_id = %s AND age(i.xmin) <= age(%s::text::xid)", [snap.project_id, str(snap.xmin_horizon)]
    )
    changed = np.zeros(len(snap.item_ids), dtype=bool)
    changed[found] = differs
    return changed[idx]


def _compare_with_snapshot(snap: Snapshot, where: str, params: list):
    """The items `where` selects (PostgreSQL), compared with the snapshot: (their positions among the
    snapshot's items, whether each differs in xmin, status or counters; status and counters too, as
    an update made in the run's own transaction keeps the row's xmin). Rows of items the run did not
    score are left out."""
    status_sql, status_params = label_case("i.status", STATUSES)
    now = read_columns(
        f"SELECT i.id, i.xmin::text::bigint, {status_sql}, i.required_annotations, i.annotation_count "
        f"FROM {Item._meta.db_table} i WHERE {where}",
        [*status_params, *params],
        {"id": np.int64, "version": np.int64, "status": np.int16, "required": np.int32, "count": np.int32},
    )
    pos = np.searchsorted(snap.item_ids, now["id"])
    seen = pos < len(snap.item_ids)
    seen[seen] = snap.item_ids[pos[seen]] == now["id"][seen]
    pos = pos[seen]
    differs = (
        (now["version"][seen] != snap.version[pos])
        | (now["required"][seen] != snap.required[pos])
        | (now["count"][seen] != snap.annotation_count[pos])
        | (now["status"][seen] != pd.Index(STATUSES).get_indexer(snap.status[pos]))
    )
    return pos, differs


# --- the chunks ------------------------------------------------------------------------------------


def _commit_without_waiting() -> None:
    """A run's write chunks commit without waiting for their WAL to reach the disk
    (synchronous_commit = off for this transaction only): dozens of commits in a few seconds, each
    waiting for the flush of everything written before it, made writers queue on the WAL. Nothing
    is lost that the run's record promises: the run is marked done by an ordinary commit at the end,
    which flushes all WAL written before it; after a crash before that, the run is failed by
    quality_runs_recover and its items are where they were or where its chunks left them, each
    chunk whole or absent."""
    if is_postgres():
        sql.execute("SET LOCAL synchronous_commit = off")


@transaction.atomic
def _accept_chunk(run, snap, scores, idx) -> np.ndarray:
    """Ground truth for the items still as the snapshot saw them (locked first); returns the stale mask."""
    _commit_without_waiting()
    ok = _unchanged(snap, idx, lock=True)
    take = idx[ok]
    consensus = scores.consensus[take]
    # The annotators who chose the consensus label, per item (one NumPy pass over the chunk).
    rows, cols = np.nonzero(snap.labels[take] == consensus[:, None])
    agreeing = np.split(snap.annotator_ids[cols], np.searchsorted(rows, np.arange(1, len(take))))
    source = f"quality-run:{run.pk}"
    decisions = [
        Decision(
            item_id=item_id,
            label=snap.label_keys[label],
            method=GroundTruthMethod.CONSENSUS,
            score=score,
            annotators=tuple(who.tolist()),
            source=source,
        )
        for item_id, label, score, who in zip(
            snap.item_ids[take].tolist(), consensus.tolist(), scores.quality[take].tolist(), agreeing
        )
    ]
    if decisions:
        ground_truth_set_many(project_id=snap.project_id, decisions=decisions)
    return ~ok


@transaction.atomic
def _request_chunk(snap, idx, *, rank: np.ndarray, replace: bool, stale: np.ndarray) -> None:
    """Request one more annotation of each disputed item that has not changed since the snapshot
    (`stale` is False: see _changed). `replace`: the project may already hold
    requests (stale ones, or for these items), which the new ones replace. On PostgreSQL the
    requests go in with one binary COPY.

    The items are not locked: whatever changes an item after it was found unchanged also changes its
    status or counters, which makes its request stale (ReopenRequest), so a newer human decision is
    never overridden."""
    _commit_without_waiting()
    ok = ~stale
    take = idx[ok]
    ids = snap.item_ids[take]
    if is_postgres():
        table = ReopenRequest._meta.db_table
        if replace:
            sql.execute(f"DELETE FROM {table} WHERE item_id = ANY(%s::bigint[])", [array_literal(snap.item_ids[idx])])
        copy_arrays(
            table,
            {
                "item_id": ("int8", ids),
                "project_id": ("int8", np.full(len(ids), snap.project_id)),
                "rank": ("float8", rank[ok]),
                "required": ("int2", snap.required[take]),
                "count": ("int4", snap.annotation_count[take]),
            },
        )
        return
    ReopenRequest.objects.bulk_create(
        [
            ReopenRequest(item_id=item_id, project_id=snap.project_id, rank=r, required=req, count=n)
            for item_id, r, req, n in zip(
                ids.tolist(), rank[ok].tolist(), snap.required[take].tolist(), snap.annotation_count[take].tolist()
            )
        ],
        update_conflicts=True,
        unique_fields=["item"],
        update_fields=["rank", "required", "count", "project"],
    )


def _set_status_chunk(
    snap, idx, *, status: str, reopen_rank: np.ndarray | None = None, queue_order: str = "", sent: dict | None = None
) -> np.ndarray:
    """Move items to `status` (reopen: one more annotation, served in `reopen_rank` order, then in the
    project's `queue_order`) unless they changed since the snapshot; returns the stale mask. On
    PostgreSQL one compare-and-set UPDATE. `sent` (actor, source, reason): the move sends the items to
    review, recorded in the same transaction (labeling.services.quality.review).

    Multi-row writers take item row locks in primary-key order, so that two of them never deadlock.
    The UPDATE takes its locks as it goes, in the order of its plan: a nested loop over the moves,
    which are stored in primary-key order, keeps them in that order without a separate locking pass
    (which would write every row twice). Should a deadlock still happen, the chunk is rolled back
    and done again with the locks taken first (common.db.locks.lock_rows)."""
    try:
        return _set_status_once(
            snap, idx, status=status, reopen_rank=reopen_rank, queue_order=queue_order, lock_first=False, sent=sent
        )
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != DEADLOCK_DETECTED:
            raise
        logger.warning("quality run: deadlock moving %s items; retrying with locks taken first", len(idx))
        return _set_status_once(
            snap, idx, status=status, reopen_rank=reopen_rank, queue_order=queue_order, lock_first=True, sent=sent
        )


@transaction.atomic
def _set_status_once(
    snap, idx, *, status: str, reopen_rank: np.ndarray | None, queue_order: str, lock_first: bool, sent=None
) -> np.ndarray:
    _commit_without_waiting()
    stale = _set_status_rows(
        snap, idx, status=status, reopen_rank=reopen_rank, queue_order=queue_order, lock_first=lock_first
    )
    if sent is not None:
        moved = ~stale
        review_sends_record(
            project_id=snap.project_id,
            moves=zip(snap.item_ids[idx][moved].tolist(), snap.status[idx][moved].tolist()),
            **sent,
        )
    return stale


def _set_status_rows(
    snap, idx, *, status: str, reopen_rank: np.ndarray | None, queue_order: str, lock_first: bool
) -> np.ndarray:
    now = timezone.now()
    ids = snap.item_ids[idx]
    if is_postgres():
        table = Item._meta.db_table
        reopen = reopen_rank is not None
        # Stored in primary-key order, the lock order: snapshot ids are sorted and chunks are ascending.
        temp_table_from_arrays(
            "quality_moves",
            {
                "id": ("int8", ids),
                "version": ("int8", snap.version[idx]),
                "status": ("int4", pd.Index(STATUSES).get_indexer(snap.status[idx])),
                "required": ("int4", snap.required[idx]),
                "count": ("int4", snap.annotation_count[idx]),
                "rank": ("float8", reopen_rank if reopen else np.zeros(len(idx))),
            },
        )
        sets = "status = %s, updated_at = %s" + (
            ", required_annotations = i.required_annotations + 1, reopen_rank = v.rank, queue_order = %s"
            if reopen
            else ""
        )
        if lock_first:
            lock_rows(Item.objects.filter(pk__in=ids.tolist()))
        else:  # the plan described above: moves in stored order, each item found by its primary key
            sql.execute_many([("SET LOCAL enable_hashjoin = off", ()), ("SET LOCAL enable_mergejoin = off", ())])
        rows = sql.fetchall(
            f"UPDATE {table} AS i SET {sets} FROM quality_moves AS v WHERE i.id = v.id AND "
            f"i.xmin::text::bigint = v.version AND i.status = (%s::text[])[v.status + 1] AND "
            f"i.required_annotations = v.required AND i.annotation_count = v.count RETURNING i.id",
            [status, now, *([queue_order] if reopen else []), "{" + ",".join(STATUSES) + "}"],
        )
        done = np.array([r[0] for r in rows], dtype=np.int64)
        return ~np.isin(ids, done)
    ok = _unchanged(snap, idx, lock=True)
    for j, i in enumerate(idx):
        if not ok[j]:
            continue
        changes = {"status": status, "updated_at": now}
        if reopen_rank is not None:
            changes.update(
                required_annotations=F("required_annotations") + 1,
                reopen_rank=float(reopen_rank[j]),
                queue_order=queue_order,
            )
        Item.objects.filter(pk=int(snap.item_ids[i])).update(**changes)
    return ~ok


# --- results and statistics ------------------------------------------------------------------


@transaction.atomic
def _insert_results(run_id, snap, scores, outcome, rows: np.ndarray, p_right=None) -> None:
    """Insert the per-item results of the snapshot's items at positions `rows` (`p_right`: the accept
    rule's estimates, when it has them)."""
    _commit_without_waiting()
    codes = pd.Index(OUTCOMES).get_indexer(outcome[rows])
    quality = np.nan_to_num(scores.quality[rows], nan=0.0)
    agreement = np.nan_to_num(scores.agreement[rows], nan=0.0)
    if is_postgres():  # one binary COPY: no temporary table, no INSERT ... SELECT to map codes to text
        copy_arrays(
            QualityItemResult._meta.db_table,
            {
                "run_id": ("int8", np.full(len(rows), run_id)),
                "item_id": ("int8", snap.item_ids[rows]),
                "consensus_label": ("text", (scores.consensus[rows], snap.label_keys)),
                "quality": ("float8", quality),
                "agreement": ("float8", agreement),
                "num_annotations": ("int2", scores.num_annotations[rows]),
                "active_learning_score": ("float8", scores.active_learning[rows]),
                "label_issue": ("bool", scores.label_issue[rows]),
                "outcome": ("text", (codes, OUTCOMES)),
                **({} if p_right is None else {"p_right": ("float8", p_right[rows])}),
            },
        )
        return
    QualityItemResult.objects.bulk_create(
        [
            QualityItemResult(
                run_id=run_id,
                item_id=int(snap.item_ids[i]),
                consensus_label=snap.label_keys[int(scores.consensus[i])],
                quality=float(quality[j]),
                agreement=float(agreement[j]),
                num_annotations=int(scores.num_annotations[i]),
                active_learning_score=float(scores.active_learning[i]),
                label_issue=bool(scores.label_issue[i]),
                p_right=None if p_right is None else float(p_right[i]),
                outcome=outcome[i],
            )
            for j, i in enumerate(rows.tolist())
        ],
        batch_size=2000,
    )


@transaction.atomic
def _write_annotator_stats(run_id, snap, scores) -> None:
    QualityAnnotatorStat.objects.filter(run_id=run_id).delete()
    rows = []
    for j, user_id in enumerate(snap.annotator_ids.tolist()):
        q = scores.annotator_quality[j]
        agr = scores.annotator_agreement[j]
        worst = int(scores.annotator_worst_class[j])
        rows.append(
            QualityAnnotatorStat(
                run_id=run_id,
                annotator_id=user_id,
                quality=None if not np.isfinite(q) else float(q),
                agreement_with_consensus=None if not np.isfinite(agr) else float(agr),
                worst_class=snap.label_keys[worst] if 0 <= worst < len(snap.label_keys) else "",
                num_labeled=int(scores.annotator_num_labeled[j]),
            )
        )
    QualityAnnotatorStat.objects.bulk_create(rows, batch_size=1000)
