"""Quality runs: score a project's annotations with cleanlab and act on the result.

A run goes through three phases, each timed on the run:

1. read: one REPEATABLE READ, READ ONLY snapshot (PostgreSQL) of every annotation, the state of
   every annotated item (status, counters, ground truth) and the newest production prediction per
   item: consistent, whatever annotators and reviewers commit meanwhile. Three connections read it
   at once (pg_export_snapshot / SET TRANSACTION SNAPSHOT), the items' state while scoring runs.
2. score: pred_probs (production predictions when every scored item has one, else out-of-sample
   scikit-learn on the payload), then CROWDLAB (cleanlab.multiannotator) when items have several
   labels, or cleanlab.rank / cleanlab.filter when every item has one (labeling.stats.consensus).
3. write: an item whose state changed since the snapshot (a new annotation, a reviewer's decision,
   anything that updated its row) is left alone and reported "stale"; otherwise quality >= the
   project's accept_threshold -> ground truth (method "consensus", with the score, through
   ground_truth_set_many, items locked in primary-key order); below it -> one more annotation while
   max_annotations_per_item and the project's annotators allow, served in ActiveLab order; else the
   review queue. One more annotation of a disputed item is a request (ReopenRequest), written with
   one binary COPY per chunk for the items whose xmin, status and counters are still the
   snapshot's (one scan from the snapshot's xmin horizon finds the few that changed: _changed);
   the item itself is not rewritten until the annotator queue opens it (a doubted
   single label, whose item is resolved, is moved back to the queue at once by one compare-and-set
   UPDATE per chunk). Accepting is ground_truth_set_many per chunk (COPY and set-based statements).
   Accept chunks, request chunks and the per-item results (each a binary COPY) go on two side
   connections, each taking the next statement left, and commit without waiting for the WAL flush
   (the run's final commit does); per-annotator statistics with bulk_create. A run thus holds up to
   three database connections at once (on SQLite, or inside a transaction, everything happens on
   one).

Two runs requested at once: a partial unique constraint lets only one queued-or-running run exist per
project; the second request gets a Conflict naming the first.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from labeling.stats import consensus
from common.db import is_postgres
from common.db.columns import array_literal, label_case, read_columns
from common.db.copy import copy_arrays, temp_table_from_arrays
from common.db.parallel import DbThread, bulk_read_settings, side_connections_usable, snapshot_export, start_calls
from common.errors import Conflict, NotFound
from labeling.models import (
    ACTIVE_RUN_STATUSES,
    Annotation,
    GroundTruth,
    GroundTruthMethod,
    Item,
    ItemStatus,
    LabelClass,
    Membership,
    PredProbsSource,
    Prediction,
    Project,
    QualityAnnotatorStat,
    QualityItemResult,
    QualityMethod,
    QualityOutcome,
    QualityRun,
    QualityRunStatus,
    QualitySettings,
    QualityTrigger,
    REOPEN_VALID_SQL,
    ReopenRequest,
    Role,
)
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.work import Heartbeat, WorkTakenOver, enqueue, work_recover
from labeling.tasks import quality_run_task

logger = logging.getLogger(__name__)

WRITE_CHUNK = 5000
REQUEST_CHUNK = 20_000  # requests per transaction: no item row locked, so larger chunks cost nothing in waiting
# Who can still be asked for one more annotation when an item is reopened.
ANNOTATING_ROLES = (Role.ANNOTATOR,)


def _run_timeout() -> timedelta:
    return timedelta(seconds=settings.LOUPE_QUALITY_RUN_TIMEOUT)


# --- requesting runs --------------------------------------------------------------------------

def _enqueue(run_id: int) -> None:
    # A broker that is down does not fail the request: the queued run is the record (the sweep sends it).
    enqueue(quality_run_task, run_id, record=False)


@transaction.atomic
def quality_run_request(*, project_id: int, requested_by=None, trigger: str = QualityTrigger.MANUAL) -> QualityRun:
    """Queue a run for the project (the task starts after commit). Raises Conflict when one is
    already queued or running: the database constraint decides, so two requests at once start one."""
    # Lock order (labeling.services.__init__): the project's quality-settings row before any quality run.
    _settings_lock(project_id)
    try:
        with transaction.atomic():
            run = QualityRun.objects.create(
                project_id=project_id, requested_by=requested_by, trigger=trigger, seed=secrets.randbelow(2**31)
            )
    except IntegrityError:
        active = QualityRun.objects.filter(project_id=project_id, status__in=ACTIVE_RUN_STATUSES).order_by("id").first()
        if active is None:  # it finished between our insert and this read: a retry will succeed
            raise Conflict("Another quality run was being queued for this project; try again.", code="run_in_progress")
        raise Conflict(
            f"Quality run #{active.pk} is already {active.status} for this project.",
            code="run_in_progress", fields={"run_id": active.pk},
        )
    _settings_row(project_id)
    QualitySettings.objects.filter(project_id=project_id).update(disputed_since_run=0)
    transaction.on_commit(partial(_enqueue, run.pk))
    return run


def _settings_row(project_id: int) -> None:
    if QualitySettings.objects.filter(project_id=project_id).exists():
        return
    try:
        with transaction.atomic():
            QualitySettings.objects.create(project_id=project_id)
    except IntegrityError:
        pass  # created concurrently


def _settings_lock(project_id: int) -> None:
    """Lock the project's quality-settings row (created if missing) until the transaction ends."""
    _settings_row(project_id)
    list(QualitySettings.objects.select_for_update().filter(project_id=project_id).values_list("pk", flat=True))


@transaction.atomic
def quality_on_item_disputed(*, project_id: int, count: int = 1) -> QualityRun | None:
    """Called by the annotation service when an item becomes disputed (inside its transaction).
    Counts new disputed items and queues a run (after commit) once the project's setting is reached;
    returns that run, or None."""
    # One statement on the hot path of every disputing submit (count and read back the setting).
    with connection.cursor() as cur:
        for _ in range(2):
            cur.execute(
                f"UPDATE {QualitySettings._meta.db_table} SET disputed_since_run = disputed_since_run + %s "
                f"WHERE project_id = %s RETURNING auto_run_after_disputed, disputed_since_run",
                [count, project_id],
            )
            row = cur.fetchone()
            if row is not None:
                break
            _settings_row(project_id)  # first disputed item of the project
    threshold, pending = row
    if not threshold or pending < threshold:
        return None
    if QualityRun.objects.filter(project_id=project_id, status__in=ACTIVE_RUN_STATUSES).exists():
        return None  # one is already queued or running (cheap check before the insert that would fail)
    try:
        return quality_run_request(project_id=project_id, trigger=QualityTrigger.AUTO)
    except Conflict:
        return None  # a run is already queued or running; the next disputed item tries again


@transaction.atomic
def quality_settings_update(*, project: Project, auto_run_after_disputed: int) -> QualitySettings:
    if not isinstance(auto_run_after_disputed, int) or isinstance(auto_run_after_disputed, bool) or not 0 <= auto_run_after_disputed <= 1_000_000:
        from common.errors import ValidationFailed

        raise ValidationFailed(
            "auto_run_after_disputed must be an integer from 0 (off) to 1,000,000.",
            fields={"auto_run_after_disputed": ["Must be an integer from 0 to 1000000."]},
        )
    _settings_row(project.pk)
    row = QualitySettings.objects.select_for_update().get(project=project)
    row.auto_run_after_disputed = auto_run_after_disputed
    row.save(update_fields=["auto_run_after_disputed", "updated_at"])
    return row


def quality_runs_recover(*, now=None, sender=None) -> dict:
    """Periodic sweep (labeling.services.work): a running run whose heartbeat stopped is queued again
    (or failed after LOUPE_WORK_MAX_ATTEMPTS), a queued run nobody picked up is sent again, and a run
    still beating past LOUPE_QUALITY_RUN_TIMEOUT (a hung worker) is failed. Safe to run any time:
    each change is a compare-and-set, and claiming a run is atomic."""
    now = now or timezone.now()
    stuck = QualityRun.objects.filter(status=QualityRunStatus.RUNNING, started_at__lt=now - _run_timeout())
    timed_out = stuck.update(status=QualityRunStatus.FAILED, finished_at=now,
                             error="The run did not finish within LOUPE_QUALITY_RUN_TIMEOUT.")
    counts = work_recover(model=QualityRun, task=quality_run_task, queued=QualityRunStatus.QUEUED,
                          running=QualityRunStatus.RUNNING, failed=QualityRunStatus.FAILED, now=now, sender=sender,
                          what="quality run")
    return {**counts, "failed": counts["failed"] + timed_out}


def quality_results_prune(*, keep_runs: int | None = None) -> int:
    """Per-item results are kept for each project's latest `keep_runs` finished runs (setting
    LOUPE_QUALITY_KEEP_RESULTS_RUNS, default 5); older runs keep their summary row only.
    Returns the number of result rows deleted."""
    keep = keep_runs if keep_runs is not None else settings.LOUPE_QUALITY_KEEP_RESULTS_RUNS
    finished = QualityRun.objects.filter(status__in=[QualityRunStatus.DONE, QualityRunStatus.FAILED])
    deleted = 0
    for project_id in finished.values_list("project_id", flat=True).distinct():
        old = list(finished.filter(project_id=project_id).order_by("-id").values_list("pk", flat=True)[keep:])
        if old:
            with transaction.atomic():
                deleted += QualityItemResult.objects.filter(run_id__in=old).delete()[0]
    return deleted


# --- phase 1: the snapshot ----------------------------------------------------------------------

STATUSES = list(ItemStatus.values)
METHODS = list(GroundTruthMethod.values)


@dataclass
class Snapshot:
    project_id: int
    label_keys: list[str]
    snapshot_at: object
    max_annotation_id: int | None
    item_ids: np.ndarray            # N, sorted
    annotator_ids: np.ndarray       # M, sorted
    labels: np.ndarray              # N × M float (NaN = not labeled)
    n_annotations: int
    n_ignored: int
    prod_probs: np.ndarray | None   # N × K when every item has a usable production prediction
    model_versions: list[str] = field(default_factory=list)
    texts: list[str] | None = None
    numeric: np.ndarray | None = None
    annotator_members: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # The items' state, in item_ids order (filled by quality_snapshot_complete when read alongside scoring):
    status: np.ndarray | None = None            # N object (ItemStatus values)
    required: np.ndarray | None = None          # N int
    annotation_count: np.ndarray | None = None  # N int
    gt_label: np.ndarray | None = None          # N object ("" = none)
    gt_method: np.ndarray | None = None         # N object ("" = none)
    version: np.ndarray | None = None           # N int: the row's xmin on PostgreSQL (any update changes it), else 0
    # PostgreSQL, read in a snapshot transaction of its own: the snapshot's xmin (32 bits). Every row
    # version the snapshot did not see was written by this transaction id or a later one (see _changed).
    xmin_horizon: int | None = None
    pending_items: DbThread | None = None       # the reader still at work, if any


def _tables():
    return {
        "a": Annotation._meta.db_table, "i": Item._meta.db_table, "g": GroundTruth._meta.db_table,
        "p": Prediction._meta.db_table, "r": ReopenRequest._meta.db_table,
    }


def quality_snapshot_read(*, project_id: int) -> Snapshot:
    """Read everything a run needs in one consistent snapshot (see the module doc).

    On PostgreSQL, called outside a transaction (as a run is), the reads go on side by side: the
    newest predictions on a second connection that imports this transaction's snapshot while this
    one reads the annotations, then the items' state on another one, which keeps reading while
    scoring starts (scoring needs only labels and pred_probs). quality_snapshot_complete() waits for
    it. Inside a transaction (tests) or on SQLite, everything is read here, one query after another."""
    parallel = side_connections_usable()
    with transaction.atomic():
        if is_postgres():
            with connection.cursor() as cur:
                if parallel:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                bulk_read_settings(cur, READ_WORK_MEM)
        return _read_snapshot(project_id, snapshot_id=snapshot_export() if parallel else None)


def quality_snapshot_complete(snap: Snapshot) -> Snapshot:
    """Wait for the items' state (status, counters, ground truth, row version) if it is still being
    read on the snapshot, and put it on `snap`."""
    if snap.pending_items is not None:
        reader, snap.pending_items = snap.pending_items, None
        _put_item_state(snap, reader.result())
    return snap


READ_WORK_MEM = "256MB"


def _read_snapshot(project_id: int, *, snapshot_id: str | None) -> Snapshot:
    t = _tables()
    label_keys = list(LabelClass.objects.filter(project_id=project_id).order_by("position", "id").values_list("key", flat=True))
    xmin_horizon = None
    with connection.cursor() as cur:
        if is_postgres():
            cur.execute("SELECT now(), mod(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, 4294967296)")
            snapshot_at, horizon = cur.fetchone()
            if snapshot_id is not None:  # (a REPEATABLE READ transaction: this snapshot is the one every read uses)
                xmin_horizon = int(horizon)
        else:
            snapshot_at = timezone.now()
    predictions = None
    if snapshot_id is not None and label_keys:
        predictions = DbThread(partial(_read_latest_predictions, project_id, label_keys, False),
                               snapshot_id=snapshot_id, work_mem=READ_WORK_MEM)

    label_sql, label_params = label_case("a.label", label_keys)
    ann = read_columns(
        f"SELECT a.item_id, a.annotator_id, {label_sql} FROM {t['a']} a WHERE a.project_id = %s",
        [*label_params, project_id], {"item_id": np.int64, "annotator_id": np.int32, "label": np.int16},
    )
    # (one probe of the (project, id) index, in the same snapshot)
    max_annotation_id = Annotation.objects.filter(project_id=project_id).order_by("-id").values_list("id", flat=True).first()
    codes = ann["label"]
    known = codes >= 0
    n_annotations, n_ignored = len(codes), int((~known).sum())
    # (pandas' hash-based factorize: np.unique(return_inverse=True) sorted all 900,000 values)
    item_idx, item_ids = pd.factorize(ann["item_id"][known], sort=True)
    annot_idx, annotator_ids = pd.factorize(ann["annotator_id"][known], sort=True)
    annotator_ids = annotator_ids.astype(np.int64)
    labels = np.full((len(item_ids), len(annotator_ids)), np.nan)
    labels[item_idx, annot_idx] = codes[known]
    del ann, codes, known, item_idx, annot_idx

    prod_probs, versions = None, []
    if len(item_ids) and label_keys:
        counted = predictions.result() if predictions is not None else _read_latest_predictions(project_id, label_keys, False)
        prod_probs, versions = _latest_probs(counted, item_ids)
        if prod_probs is None:
            # Not every scored item was among the counted ones (no prediction, or a drifted counter):
            # read exactly the annotated items' predictions before falling back to a trained model.
            prod_probs, versions = _latest_probs(_read_latest_predictions(project_id, label_keys, True), item_ids)
    elif predictions is not None:
        predictions.result()
    texts = numeric = None
    if prod_probs is None and len(item_ids):
        texts, numeric = _read_features(project_id, item_ids)

    members = np.array(
        sorted(Membership.objects.filter(project_id=project_id, role__in=ANNOTATING_ROLES).values_list("user_id", flat=True)),
        dtype=np.int64,
    )
    # The items' state is read while scoring runs (scoring needs only labels and pred_probs); started
    # only now, so that it does not compete with the predictions' read for the two cores.
    read_state = partial(_read_item_state, project_id, item_ids, label_keys)
    items = DbThread(read_state, snapshot_id=snapshot_id, work_mem=READ_WORK_MEM) if snapshot_id is not None else None
    snap = Snapshot(
        project_id=project_id, label_keys=label_keys, snapshot_at=snapshot_at, max_annotation_id=max_annotation_id,
        item_ids=item_ids, annotator_ids=annotator_ids, labels=labels, n_annotations=n_annotations, n_ignored=n_ignored,
        prod_probs=prod_probs, model_versions=versions, texts=texts, numeric=numeric, annotator_members=members,
        xmin_horizon=xmin_horizon,
    )
    if items is None:
        _put_item_state(snap, read_state())
    else:
        items.wait_started()  # it holds the snapshot now: this transaction may end
        snap.pending_items = items
    return snap


def _read_item_state(project_id, item_ids, label_keys) -> dict:
    """Status, counters, ground truth and row version of the annotated items, in `item_ids` order."""
    t = _tables()
    status_sql, status_params = label_case("i.status", STATUSES)
    gt_label_sql, gt_label_params = label_case("g.label", label_keys)
    method_sql, method_params = label_case("g.method", METHODS)
    version_sql = "i.xmin::text::bigint" if is_postgres() else "0"

    def read_items(annotated_sql):
        return read_columns(
            f"SELECT i.id, {status_sql}, i.required_annotations, i.annotation_count, {gt_label_sql}, {method_sql}, "
            f"{version_sql}, CASE WHEN r.item_id IS NOT NULL AND {REOPEN_VALID_SQL.format(i='i', r='r')} THEN 1 ELSE 0 END "
            f"FROM {t['i']} i LEFT JOIN {t['g']} g ON g.item_id = i.id LEFT JOIN {t['r']} r ON r.item_id = i.id "
            f"WHERE i.project_id = %s AND {annotated_sql}",
            [*status_params, *gt_label_params, *method_params, project_id],
            {"id": np.int64, "status": np.int64, "required": np.int64, "count": np.int64, "gt_label": np.int64,
             "gt_method": np.int64, "version": np.int64, "pending": np.int64},
        )

    # The annotation counter picks the annotated items cheaply; should it ever have drifted from the
    # annotations (the reconcile task repairs that), the exact EXISTS query takes over.
    items = read_items("i.annotation_count > 0")
    pos = _positions(items["id"], item_ids)
    if pos is None:
        items = read_items(f"EXISTS (SELECT 1 FROM {t['a']} a WHERE a.item_id = i.id)")
        pos = _positions(items["id"], item_ids)
        if pos is None:
            raise RuntimeError("An annotated item is missing from the snapshot's items.")
    pick = {k: v[pos] for k, v in items.items()}
    # An item waiting for the one more annotation a run asked for is the open item it will become
    # (see ReopenRequest): nothing new to decide about it until that annotation comes.
    pending = pick["pending"] == 1
    pick["status"][pending] = STATUSES.index(ItemStatus.OPEN)
    pick["required"][pending] += 1
    label_names = np.array([*label_keys, "", ""], dtype=object)  # index -1 / -2: none
    method_names = np.array([*METHODS, "", ""], dtype=object)
    return {
        "status": np.array(STATUSES + [""], dtype=object)[pick["status"]], "required": pick["required"],
        "annotation_count": pick["count"], "gt_label": label_names[pick["gt_label"]],
        "gt_method": method_names[pick["gt_method"]], "version": pick["version"],
    }


def _put_item_state(snap: Snapshot, state: dict) -> None:
    for name, values in state.items():
        setattr(snap, name, values)


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray | None:
    """Where each of `wanted` is in `ids` (None if one is missing)."""
    if len(wanted) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(ids) == 0:
        return None
    order = np.argsort(ids)
    at = np.searchsorted(ids, wanted, sorter=order)
    if (at >= len(ids)).any():
        return None
    pos = order[at]
    return pos if (ids[pos] == wanted).all() else None


def _read_latest_predictions(project_id, label_keys, exact: bool) -> dict:
    """The newest prediction with probabilities of each annotated item of the project: item_id,
    model_version and probs (N × K in label order, NaN where a label is missing). Annotated items
    are found by their counter, or with `exact` by their annotations."""
    t = _tables()
    k = len(label_keys)
    if is_postgres():
        annotated_sql = (f"EXISTS (SELECT 1 FROM {t['a']} a WHERE a.item_id = i.id)" if exact
                         else "i.annotation_count > 0")
        # Prediction.vector holds the numbers already, and the prediction_latest index holds it in
        # this order: the read touches neither the table nor a sort (an index-only scan merged with
        # the items). A newest row without a usable vector is converted from its jsonb afterwards.
        order = "ORDER BY p.item_id, p.predicted_at DESC, p.id DESC"
        latest = (
            f"SELECT DISTINCT ON (p.item_id) p.item_id, p.model_version, "
            f"CASE WHEN length(p.vector) = {8 * k} THEN p.vector END, (length(p.vector) = {8 * k})::int "
            f"FROM {t['p']} p JOIN {t['i']} i ON i.id = p.item_id WHERE i.project_id = %s AND p.probabilities IS NOT NULL "
            f"AND {annotated_sql} {order}"
        )
        frame = read_columns(latest, [project_id], {"item_id": np.int64, "model_version": str, "probs": (float, k),
                                                    "has_vector": np.int16})
        without = np.nonzero(frame.pop("has_vector") != 1)[0]
        if len(without):
            from_jsonb = (
                "(SELECT string_agg(float8send(coalesce((p.probabilities ->> u.key)::float8, 'NaN')), ''::bytea ORDER BY u.o) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS u(key, o))"
            )
            converted = read_columns(
                f"SELECT DISTINCT ON (p.item_id) p.item_id, {from_jsonb} FROM {t['p']} p "
                f"WHERE p.item_id = ANY(%s::bigint[]) AND p.probabilities IS NOT NULL {order}",
                [label_keys, array_literal(frame["item_id"][without])], {"item_id": np.int64, "probs": (float, k)},
            )
            at = np.searchsorted(frame["item_id"], converted["item_id"])  # (both in item order)
            frame["probs"][at] = converted["probs"]
        return frame
    latest = {}
    qs = Prediction.objects.filter(item__project_id=project_id, probabilities__isnull=False)
    if exact:
        qs = qs.filter(Exists(Annotation.objects.filter(item_id=OuterRef("item_id"))))
    else:
        qs = qs.filter(item__annotation_count__gt=0)
    for item_id, mv, raw in (
        qs.order_by("item_id", "predicted_at", "id").values_list("item_id", "model_version", "probabilities")
    ):
        latest[item_id] = (mv, raw)
    ids = np.array(sorted(latest), dtype=np.int64)
    return {
        "item_id": ids, "model_version": np.array([latest[i][0] for i in ids.tolist()], dtype=object),
        "probs": np.array([[_prob(latest[i][1], key) for key in label_keys] for i in ids.tolist()], dtype=float).reshape(-1, k),
    }


def _latest_probs(frame: dict, item_ids: np.ndarray):
    """N × K probabilities for `item_ids` from a _read_latest_predictions frame, and the model versions
    used (most used first); (None, []) unless every item has a usable one."""
    if len(item_ids) == 0 or frame["probs"].shape[1] == 0:
        return None, []
    pos = _positions(frame["item_id"], item_ids)
    if pos is None:  # some scored item has no prediction with probabilities
        return None, []
    probs = frame["probs"][pos]
    if np.isnan(probs).any() or (probs < 0).any() or (probs.sum(axis=1) <= 0).any():
        return None, []
    used = pd.Series(frame["model_version"][pos]).value_counts()  # most used first
    return probs, [str(v) for v in used.index[:10]]


def _prob(probs, key):
    value = probs.get(key) if isinstance(probs, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def _read_features(project_id, item_ids):
    """Payload text, or numeric payload fields, for the out-of-sample model."""
    payloads = dict(
        Item.objects.filter(project_id=project_id, pk__in=item_ids.tolist()).values_list("pk", "payload").iterator(chunk_size=5000)
    )
    rows = [payloads.get(int(i)) or {} for i in item_ids]
    texts = [r.get("text") if isinstance(r.get("text"), str) else "" for r in rows]
    if sum(1 for s in texts if s.strip()) >= max(1, len(rows) // 2):
        return texts, None
    key_counts = {}
    for r in rows:
        for key, value in r.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                key_counts[key] = key_counts.get(key, 0) + 1
    keys = sorted(k for k, c in key_counts.items() if c >= max(1, len(rows) // 2))[:200]
    if not keys:
        return None, None
    numeric = np.array(
        [[float(r[k]) if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) else np.nan for k in keys] for r in rows]
    )
    numeric[~np.isfinite(numeric)] = np.nan
    return None, numeric


# --- phase 2: scoring ---------------------------------------------------------------------------

def snapshot_pred_probs(snap: Snapshot, *, seed: int) -> tuple[np.ndarray, str]:
    """pred_probs for the snapshot's items (checked and normalised) and where they came from."""
    k = len(snap.label_keys)
    if snap.prod_probs is not None:
        return consensus.normalize_pred_probs(snap.prod_probs), PredProbsSource.PRODUCTION
    rng = np.random.default_rng(seed)
    train = consensus.majority_vote(snap.labels, k, rng=rng)
    if snap.texts is not None:
        probs = consensus.crossval_pred_probs(train_labels=train, n_classes=k, texts=snap.texts, seed=seed)
        if probs is not None:
            return consensus.normalize_pred_probs(probs), PredProbsSource.CROSSVAL_TEXT
    if snap.numeric is not None:
        probs = consensus.crossval_pred_probs(train_labels=train, n_classes=k, numeric=snap.numeric, seed=seed)
        if probs is not None:
            return consensus.normalize_pred_probs(probs), PredProbsSource.CROSSVAL_NUMERIC
    return consensus.normalize_pred_probs(consensus.class_prior_pred_probs(train, k, len(train), rng=rng)), PredProbsSource.CLASS_PRIOR


# --- phase 3: outcomes ---------------------------------------------------------------------------

@dataclass
class Plan:
    outcome: np.ndarray       # N object (QualityOutcome values)
    actionable: np.ndarray    # N bool: needs a locked write (or a check that nothing changed)


def plan_outcomes(snap: Snapshot, scores: consensus.CrowdScores, *, accept_threshold: float, max_annotations: int) -> Plan:
    """What the run would do with each item, judged on the snapshot (re-checked under lock at write)."""
    n = len(snap.item_ids)
    outcome = np.full(n, QualityOutcome.PENDING.value, dtype=object)
    status = snap.status
    labeled = ~np.isnan(snap.labels)
    # Annotators of the project who have not labeled the item yet (someone must be able to take it).
    if len(snap.annotator_members):
        member_cols = np.isin(snap.annotator_ids, snap.annotator_members)
        already = labeled[:, member_cols].sum(axis=1)
    else:
        already = np.zeros(n, dtype=np.int64)
    can_reopen = (snap.required < max_annotations) & (len(snap.annotator_members) - already > 0)
    # Accept only a label that some annotator chose (CROWDLAB may prefer the model's class).
    good = (scores.quality >= accept_threshold) & (scores.agreement > 0) & ~scores.label_issue
    low_outcome = np.where(can_reopen, QualityOutcome.REOPENED.value, QualityOutcome.REVIEW.value)

    disputed = status == ItemStatus.DISPUTED
    outcome[disputed] = np.where(good[disputed], QualityOutcome.ACCEPTED.value, low_outcome[disputed])

    resolved = status == ItemStatus.RESOLVED
    outcome[resolved] = QualityOutcome.KEPT.value
    # A single annotator's label that cleanlab doubts (no human agreed with it): ask again or review.
    single_doubt = resolved & (scores.num_annotations == 1) & ~good & np.isin(
        snap.gt_method, [GroundTruthMethod.UNANIMOUS.value, GroundTruthMethod.CONSENSUS.value]
    )
    outcome[single_doubt] = low_outcome[single_doubt]
    outcome[status == ItemStatus.CONFLICT] = QualityOutcome.KEPT.value
    actionable = disputed | single_doubt
    return Plan(outcome=outcome, actionable=actionable)


OUTCOMES = list(QualityOutcome.values)


def _chunks(idx: np.ndarray, size: int):
    for start in range(0, len(idx), size):
        yield idx[start:start + size]


def _unchanged(snap: Snapshot, idx: np.ndarray, *, lock: bool) -> np.ndarray:
    """Which of these items are exactly as the snapshot saw them (optionally locking them, in
    primary-key order). Compared: status and counters, and on PostgreSQL the row's xmin, which any
    other transaction's update changes (ground truth is only ever set together with the item's
    status, see labeling.services.ground_truth); elsewhere the ground truth itself. An item gone
    since counts as changed."""
    ids = snap.item_ids[idx]
    if is_postgres():
        found, differs = _compare_with_snapshot(snap, "i.id = ANY(%s::bigint[])", [array_literal(ids)], lock=lock)
        ok = np.zeros(len(snap.item_ids), dtype=bool)
        ok[found] = ~differs
        return ok[idx]
    qs = Item.objects.filter(pk__in=ids.tolist())
    if lock:
        qs = qs.select_for_update().order_by("pk")
    now = {
        row[0]: row[1:]
        for row in qs.values_list("pk", "status", "required_annotations", "annotation_count", "ground_truth__label", "ground_truth__method")
    }
    return np.array([
        now.get(int(snap.item_ids[i])) == (snap.status[i], int(snap.required[i]), int(snap.annotation_count[i]),
                                           snap.gt_label[i] or None, snap.gt_method[i] or None)
        for i in idx
    ], dtype=bool)


def _changed(snap: Snapshot, idx: np.ndarray) -> np.ndarray:
    """Which of these items changed since the snapshot (a mask over `idx`), without locking them.

    With the snapshot's xmin horizon (PostgreSQL, a run outside a transaction), one scan of the
    project's items picks the rows written by a transaction the snapshot may not have seen (age of
    xmin no older than the horizon's: the few items touched while the run scored), and only those
    are compared with the snapshot, as _unchanged does. A row version older than the horizon was
    committed before the snapshot, which therefore saw it: unchanged. (_unchanged instead reads
    every item by its primary key: 0.05 s per 20,000 items, against one 0.04 s scan of 300,000.)"""
    if snap.xmin_horizon is None:
        return ~_unchanged(snap, idx, lock=False)
    found, differs = _compare_with_snapshot(snap, "i.project_id = %s AND age(i.xmin) <= age(%s::text::xid)",
                                            [snap.project_id, str(snap.xmin_horizon)])
    changed = np.zeros(len(snap.item_ids), dtype=bool)
    changed[found] = differs
    return changed[idx]


def _compare_with_snapshot(snap: Snapshot, where: str, params: list, *, lock: bool = False):
    """The items `where` selects (PostgreSQL; optionally locked, in primary-key order), compared with
    the snapshot: (their positions among the snapshot's items, whether each differs in xmin, status
    or counters; status and counters too, as an update made in the run's own transaction keeps the
    row's xmin). Rows of items the run did not score are left out."""
    status_sql, status_params = label_case("i.status", STATUSES)
    now = read_columns(
        f"SELECT i.id, i.xmin::text::bigint, {status_sql}, i.required_annotations, i.annotation_count "
        f"FROM {Item._meta.db_table} i WHERE {where}" + (" ORDER BY i.id FOR UPDATE" if lock else ""),
        [*status_params, *params],
        {"id": np.int64, "version": np.int64, "status": np.int16, "required": np.int32, "count": np.int32},
    )
    pos = np.searchsorted(snap.item_ids, now["id"])
    seen = pos < len(snap.item_ids)
    seen[seen] = snap.item_ids[pos[seen]] == now["id"][seen]
    pos = pos[seen]
    differs = (
        (now["version"][seen] != snap.version[pos]) | (now["required"][seen] != snap.required[pos])
        | (now["count"][seen] != snap.annotation_count[pos])
        | (now["status"][seen] != pd.Index(STATUSES).get_indexer(snap.status[pos]))
    )
    return pos, differs


def _commit_without_waiting() -> None:
    """A run's write chunks commit without waiting for their WAL to reach the disk
    (synchronous_commit = off for this transaction only): dozens of commits in a few seconds, each
    waiting for the flush of everything written before it, made writers queue on the WAL. Nothing
    is lost that the run's record promises: the run is marked done by an ordinary commit at the end,
    which flushes all WAL written before it; after a crash before that, the run is failed by
    quality_runs_recover and its items are where they were or where its chunks left them, each
    chunk whole or absent."""
    if is_postgres():
        with connection.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")


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
        Decision(item_id=item_id, label=snap.label_keys[label], method=GroundTruthMethod.CONSENSUS, score=score,
                 annotators=tuple(who.tolist()), source=source)
        for item_id, label, score, who in zip(snap.item_ids[take].tolist(), consensus.tolist(),
                                              scores.quality[take].tolist(), agreeing)
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
            with connection.cursor() as cur:
                cur.execute(f"DELETE FROM {table} WHERE item_id = ANY(%s::bigint[])", [array_literal(snap.item_ids[idx])])
        copy_arrays(table, {
            "item_id": ("int8", ids), "project_id": ("int8", np.full(len(ids), snap.project_id)),
            "rank": ("float8", rank[ok]), "required": ("int2", snap.required[take]), "count": ("int4", snap.annotation_count[take]),
        })
        return
    ReopenRequest.objects.bulk_create(
        [ReopenRequest(item_id=item_id, project_id=snap.project_id, rank=r, required=req, count=n)
         for item_id, r, req, n in zip(ids.tolist(), rank[ok].tolist(), snap.required[take].tolist(),
                                       snap.annotation_count[take].tolist())],
        update_conflicts=True, unique_fields=["item"], update_fields=["rank", "required", "count", "project"],
    )


def _set_status_chunk(snap, idx, *, status: str, reopen_rank: np.ndarray | None = None, queue_order: str = "") -> np.ndarray:
    """Move items to `status` (reopen: one more annotation, served in `reopen_rank` order, then in the
    project's `queue_order`) unless they changed since the snapshot. On PostgreSQL one compare-and-set UPDATE; returns the stale mask.

    Multi-row writers take item row locks in primary-key order, so that two of them never deadlock.
    The UPDATE takes its locks as it goes, in the order of its plan: a nested loop over the moves,
    which are stored in primary-key order, keeps them in that order without a separate locking pass
    (that pass wrote every row twice: ~1 s per 170,000 items). Should a deadlock still happen, the
    chunk is rolled back and done again with the locks taken first, explicitly."""
    try:
        return _set_status_once(snap, idx, status=status, reopen_rank=reopen_rank, queue_order=queue_order, lock_first=False)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != DEADLOCK_DETECTED:
            raise
        logger.warning("quality run: deadlock moving %s items; retrying with locks taken first", len(idx))
        return _set_status_once(snap, idx, status=status, reopen_rank=reopen_rank, queue_order=queue_order, lock_first=True)


DEADLOCK_DETECTED = "40P01"


@transaction.atomic
def _set_status_once(snap, idx, *, status: str, reopen_rank: np.ndarray | None, queue_order: str, lock_first: bool) -> np.ndarray:
    _commit_without_waiting()
    now = timezone.now()
    ids = snap.item_ids[idx]
    if is_postgres():
        table = Item._meta.db_table
        reopen = reopen_rank is not None
        # Stored in primary-key order, the lock order: snapshot ids are sorted and chunks are ascending.
        temp_table_from_arrays("quality_moves", {
            "id": ("int8", ids), "version": ("int8", snap.version[idx]),
            "status": ("int4", pd.Index(STATUSES).get_indexer(snap.status[idx])),
            "required": ("int4", snap.required[idx]), "count": ("int4", snap.annotation_count[idx]),
            "rank": ("float8", reopen_rank if reopen else np.zeros(len(idx))),
        })
        sets = "status = %s, updated_at = %s" + (
            ", required_annotations = i.required_annotations + 1, reopen_rank = v.rank, queue_order = %s" if reopen else ""
        )
        with connection.cursor() as cur:
            if lock_first:
                cur.execute(f"SELECT count(*) FROM (SELECT i.id FROM {table} i JOIN quality_moves v ON v.id = i.id "
                            f"ORDER BY i.id FOR UPDATE OF i) AS locked")
            else:  # the plan described above: moves in stored order, each item found by its primary key
                cur.execute("SET LOCAL enable_hashjoin = off")
                cur.execute("SET LOCAL enable_mergejoin = off")
            cur.execute(
                f"UPDATE {table} AS i SET {sets} FROM quality_moves AS v WHERE i.id = v.id AND "
                f"i.xmin::text::bigint = v.version AND i.status = (%s::text[])[v.status + 1] AND "
                f"i.required_annotations = v.required AND i.annotation_count = v.count RETURNING i.id",
                [status, now, *([queue_order] if reopen else []), "{" + ",".join(STATUSES) + "}"],
            )
            done = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
        return ~np.isin(ids, done)
    ok = _unchanged(snap, idx, lock=True)
    for j, i in enumerate(idx):
        if not ok[j]:
            continue
        changes = {"status": status, "updated_at": now}
        if reopen_rank is not None:
            changes.update(required_annotations=F("required_annotations") + 1, reopen_rank=float(reopen_rank[j]),
                           queue_order=queue_order)
        Item.objects.filter(pk=int(snap.item_ids[i])).update(**changes)
    return ~ok


def _write_outcomes(run, snap: Snapshot, scores: consensus.CrowdScores, plan: Plan) -> np.ndarray:
    """Apply the plan, item by item only where nobody acted since the snapshot; then record every
    item's result (with "stale" where a person got there first) and the annotator statistics.
    Returns each item's outcome as recorded.

    The per-item results depend on the item writes only for the few items found stale: they go in
    with the planned outcome (where side connections are usable, on the two connections that also
    write the accepts and the requests for one more annotation: their index upkeep is CPU work the
    server shares between cores), and the stale ones are re-marked afterwards."""
    QualityItemResult.objects.filter(run_id=run.pk).delete()  # a re-executed run starts over
    parts = np.array_split(np.arange(len(snap.item_ids)), RESULT_PARTS)
    stale = _apply_plan(run, snap, scores, plan, alongside=[
        partial(_insert_results, run.pk, snap, scores, plan.outcome, rows) for rows in parts])
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
    # (WALWrite) and on the two cores (the backlog's write took 2.5 s with four instead of 1.7 s).
    # Chunks hold disjoint items, and requests and results lock no item row, so no two calls wait
    # for each other; the per-project label sequence, reserved last in each accept chunk, orders
    # their commits.
    requested = np.nonzero(reopened & (snap.status == ItemStatus.DISPUTED))[0]
    review = act & (outcome == QualityOutcome.REVIEW)
    stays = np.nonzero(review & (snap.status == ItemStatus.DISPUTED))[0]  # nothing to write: report it as it is now
    # The items that get no row lock (requests, review as it is): which changed since the snapshot.
    unlocked = np.concatenate([requested, stays])
    stale[unlocked] = _changed(snap, unlocked)
    replace = ReopenRequest.objects.filter(project_id=snap.project_id).exists()  # (only runs add requests: one at a time)
    accept = [partial(_accept_chunk, run, snap, scores, idx) for idx in _chunks(accepted, WRITE_CHUNK)]
    request = [partial(_request_chunk, snap, idx, rank=scores.active_learning[idx], replace=replace, stale=stale[idx])
               for idx in _chunks(requested, REQUEST_CHUNK)]
    values = start_calls([*accept, *alongside, *request])()
    for idx, chunk_stale in zip(_chunks(accepted, WRITE_CHUNK), values[:len(accept)]):
        stale[idx] = chunk_stale
    # A doubted single label (its item resolved) goes back to the queue at once.
    single = np.nonzero(reopened & (snap.status != ItemStatus.DISPUTED))[0]
    for idx in _chunks(single, 2 * WRITE_CHUNK):
        stale[idx] = _set_status_chunk(snap, idx, status=ItemStatus.OPEN, reopen_rank=scores.active_learning[idx],
                                       queue_order=run.project.queue_order)
    moved = np.nonzero(review & (snap.status != ItemStatus.DISPUTED))[0]  # a doubted single label goes to review
    for idx in _chunks(moved, 4 * WRITE_CHUNK):
        stale[idx] = _set_status_chunk(snap, idx, status=ItemStatus.DISPUTED)
    return stale


RESULT_PARTS = 4  # statements (transactions) the per-item results go in with (see _apply_plan)


@transaction.atomic
def _insert_results(run_id, snap, scores, outcome, rows: np.ndarray) -> None:
    """Insert the per-item results of the snapshot's items at positions `rows`."""
    _commit_without_waiting()
    codes = pd.Index(OUTCOMES).get_indexer(outcome[rows])
    quality = np.nan_to_num(scores.quality[rows], nan=0.0)
    agreement = np.nan_to_num(scores.agreement[rows], nan=0.0)
    if is_postgres():  # one binary COPY: no temporary table, no INSERT ... SELECT to map codes to text
        copy_arrays(QualityItemResult._meta.db_table, {
            "run_id": ("int8", np.full(len(rows), run_id)), "item_id": ("int8", snap.item_ids[rows]),
            "consensus_label": ("text", (scores.consensus[rows], snap.label_keys)), "quality": ("float8", quality),
            "agreement": ("float8", agreement), "num_annotations": ("int2", scores.num_annotations[rows]),
            "active_learning_score": ("float8", scores.active_learning[rows]), "label_issue": ("bool", scores.label_issue[rows]),
            "outcome": ("text", (codes, OUTCOMES)),
        })
        return
    QualityItemResult.objects.bulk_create([
        QualityItemResult(
            run_id=run_id, item_id=int(snap.item_ids[i]), consensus_label=snap.label_keys[int(scores.consensus[i])],
            quality=float(quality[j]), agreement=float(agreement[j]), num_annotations=int(scores.num_annotations[i]),
            active_learning_score=float(scores.active_learning[i]), label_issue=bool(scores.label_issue[i]), outcome=outcome[i],
        )
        for j, i in enumerate(rows.tolist())
    ], batch_size=2000)


@transaction.atomic
def _write_annotator_stats(run_id, snap, scores) -> None:
    QualityAnnotatorStat.objects.filter(run_id=run_id).delete()
    rows = []
    for j, user_id in enumerate(snap.annotator_ids.tolist()):
        q = scores.annotator_quality[j]
        agr = scores.annotator_agreement[j]
        worst = int(scores.annotator_worst_class[j])
        rows.append(QualityAnnotatorStat(
            run_id=run_id, annotator_id=user_id, quality=None if not np.isfinite(q) else float(q),
            agreement_with_consensus=None if not np.isfinite(agr) else float(agr),
            worst_class=snap.label_keys[worst] if 0 <= worst < len(snap.label_keys) else "",
            num_labeled=int(scores.annotator_num_labeled[j]),
        ))
    QualityAnnotatorStat.objects.bulk_create(rows, batch_size=1000)


# --- running ------------------------------------------------------------------------------------

def _claim(run_id: int) -> QualityRun | None:
    """queued -> running, atomically: a duplicate or redelivered task message finds nothing to do."""
    now = timezone.now()
    claimed = QualityRun.objects.filter(pk=run_id, status=QualityRunStatus.QUEUED).update(
        status=QualityRunStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1, error=""
    )
    if not claimed:
        return None
    return QualityRun.objects.select_related("project").get(pk=run_id)


def quality_run_execute(*, run_id: int) -> QualityRun | None:
    """Run a queued quality run to completion (or failure, with the error on the run). Idempotent:
    a run that is not queued is left alone. Returns the run, or None if there was nothing to do."""
    if not QualityRun.objects.filter(pk=run_id).exists():
        raise NotFound(f"Quality run #{run_id} does not exist.")
    run = _claim(run_id)
    if run is None:
        return None
    # The heartbeat tells the work sweep this attempt is alive; it stops when the sweep handed the run
    # to another attempt, and this one then stops before writing anything more.
    with Heartbeat(QualityRun, run.pk, run.attempts) as beat:
        return _execute(run, beat)


def _execute(run: QualityRun, beat: Heartbeat) -> QualityRun:
    run_id = run.pk
    mine = QualityRun.objects.filter(pk=run_id, status=QualityRunStatus.RUNNING, attempts=run.attempts)
    started = time.perf_counter()
    timings = {}
    try:
        project = run.project
        t = time.perf_counter()
        snap = quality_snapshot_read(project_id=project.pk)
        timings["seconds_read"] = time.perf_counter() - t
        base = {
            "snapshot_at": snap.snapshot_at, "snapshot_max_annotation_id": snap.max_annotation_id,
            "n_annotations": snap.n_annotations, "n_annotators": len(snap.annotator_ids),
            "n_ignored_annotations": snap.n_ignored, "accept_threshold": project.accept_threshold,
        }
        if len(snap.item_ids) == 0:
            quality_snapshot_complete(snap)
            _finish(run, started, timings, **_summary(np.zeros(0, dtype=object), np.zeros(0), np.zeros(0, dtype=bool)),
                    method=QualityMethod.NONE, **base)
            return QualityRun.objects.get(pk=run_id)
        t = time.perf_counter()
        pred_probs, source = snapshot_pred_probs(snap, seed=run.seed)
        timings["seconds_pred_probs"] = time.perf_counter() - t
        t = time.perf_counter()
        scores = consensus.score_crowd(snap.labels, pred_probs, seed=run.seed, normalized=True)
        # The time inside cleanlab's functions only; our own arithmetic around them counts in the total.
        timings["seconds_cleanlab"] = scores.seconds_cleanlab or (time.perf_counter() - t)
        t = time.perf_counter()
        quality_snapshot_complete(snap)  # the items' state was read while scoring; any wait left is read time
        timings["seconds_read"] += time.perf_counter() - t
        beat.check()
        t = time.perf_counter()
        plan = plan_outcomes(snap, scores, accept_threshold=project.accept_threshold,
                             max_annotations=project.max_annotations_per_item)
        outcome = _write_outcomes(run, snap, scores, plan)
        timings["seconds_write"] = time.perf_counter() - t
        _finish(run, started, timings, **_summary(outcome, scores.quality, scores.label_issue), method=scores.method,
                pred_probs_source=source,
                model_versions=", ".join(snap.model_versions)[:512] if source == PredProbsSource.PRODUCTION else "", **base)
    except WorkTakenOver:
        logger.warning("quality run %s: attempt %s stopped, the run was handed to another attempt", run_id, run.attempts)
    except Exception as exc:  # the run records its error; the task does not retry a deterministic failure
        logger.exception("quality run %s failed", run_id)
        mine.update(
            status=QualityRunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000], finished_at=timezone.now(),
            seconds_total=time.perf_counter() - started, **timings,
        )
    return QualityRun.objects.get(pk=run_id)


def _summary(outcome: np.ndarray, quality: np.ndarray, label_issue: np.ndarray) -> dict:
    """The run's counts, from the outcomes its per-item results were written with."""
    quality = np.nan_to_num(quality, nan=0.0)  # as the results store it
    return {
        "scored": len(outcome), "mean_quality": float(quality.mean()) if len(quality) else None,
        "auto_accepted": int((outcome == QualityOutcome.ACCEPTED).sum()),
        "to_review": int((outcome == QualityOutcome.REVIEW).sum()),
        "reopened_for_more": int((outcome == QualityOutcome.REOPENED).sum()),
        "skipped_stale": int((outcome == QualityOutcome.STALE).sum()),
        "label_issues": int(np.asarray(label_issue, dtype=bool).sum()),
    }


def _finish(run, started, timings, **fields) -> None:
    with transaction.atomic():
        finished = QualityRun.objects.filter(pk=run.pk, status=QualityRunStatus.RUNNING, attempts=run.attempts).update(
            status=QualityRunStatus.DONE, finished_at=timezone.now(), seconds_total=time.perf_counter() - started,
            **timings, **fields,
        )
        if not finished:
            return  # another attempt owns the run now (this one's heartbeat had stopped)
        # Disputes that arrived while this run worked may already call for the next one.
        threshold_reached = QualitySettings.objects.filter(
            project_id=run.project_id, auto_run_after_disputed__gt=0,
            disputed_since_run__gte=F("auto_run_after_disputed"),
        ).exists()
    if threshold_reached:
        try:
            quality_run_request(project_id=run.project_id, trigger=QualityTrigger.AUTO)
        except Conflict:
            pass


# --- demo data ----------------------------------------------------------------------------------

DEMO_ANNOTATORS = (("demo-annotator", 0.92), ("demo-annotator2", 0.8), ("demo-annotator3", 0.62))
DEMO_ITEMS = 40


def quality_demo_load(*, project: Project) -> QualityRun | None:
    """Demo data for review and quality: the three demo annotators label the project's last 40 items
    (some agree, some not; a few are three-way splits), then one quality run scores them, which
    accepts the clear consensus and leaves the doubtful items in the review queue. Idempotent:
    does nothing once those items have annotations."""
    import random

    from django.contrib.auth import get_user_model

    from labeling.management.commands.loupe_demo import PHRASES

    users = {u.username: u for u in get_user_model().objects.filter(username__in=[name for name, _ in DEMO_ANNOTATORS])}
    if len(users) < len(DEMO_ANNOTATORS):
        return None
    items = list(Item.objects.filter(project=project).order_by("-id")[:DEMO_ITEMS])
    if not items or Annotation.objects.filter(item__in=items).exists():
        return None
    keys = list(LabelClass.objects.filter(project=project).order_by("position", "id").values_list("key", flat=True))
    rng = random.Random(11)
    rows, decisions, disputed = [], [], []
    with transaction.atomic():
        for n, item in enumerate(sorted(items, key=lambda it: it.pk)):
            true = next((k for k, phrases in PHRASES.items() if any(p in item.text for p in phrases)), rng.choice(keys))
            if n % 9 == 4:  # a genuinely unclear ticket: everyone says something else
                chosen = rng.sample(keys, len(DEMO_ANNOTATORS))
            else:
                chosen = [true if rng.random() < acc else rng.choice([k for k in keys if k != true]) for _, acc in DEMO_ANNOTATORS]
            for (name, _), label in zip(DEMO_ANNOTATORS, chosen):
                rows.append(Annotation(project_id=item.project_id, item=item, annotator=users[name], label=label, seconds_spent=round(rng.uniform(3, 40), 1)))
            if len(set(chosen)) == 1:
                decisions.append(Decision(item.pk, chosen[0], GroundTruthMethod.UNANIMOUS,
                                          annotators=tuple(users[name].pk for name, _ in DEMO_ANNOTATORS)))
            else:
                disputed.append(item.pk)
        Annotation.objects.bulk_create(rows)
        Item.objects.filter(pk__in=[it.pk for it in items]).update(annotation_count=len(DEMO_ANNOTATORS))
        Item.objects.filter(pk__in=disputed).update(status=ItemStatus.DISPUTED)
        if decisions:
            ground_truth_set_many(project_id=project.pk, decisions=decisions)
    try:
        run = quality_run_request(project_id=project.pk, trigger=QualityTrigger.MANUAL)
    except Conflict:
        return None
    quality_run_execute(run_id=run.pk)  # (already done if tasks run in-process: then this is a no-op)
    return QualityRun.objects.get(pk=run.pk)
