"""A quality run's read: one consistent snapshot of a project's annotations, its annotated items'
state and their newest production predictions, and the pred_probs scoring starts from.

On PostgreSQL, outside a transaction, the read is one REPEATABLE READ, READ ONLY snapshot shared
with side connections (common.db.parallel): the predictions are read beside the annotations, and
the items' state keeps being read while scoring starts (quality_snapshot_complete waits for it).
Long because the three reads (annotations, items' state, predictions) share the one snapshot and
its SQL, and are changed together.

Raw SQL: the reads are whole-table scans that come back as NumPy columns (common.db.columns), and
use what the ORM cannot say: DISTINCT ON over the prediction index, row xmin, the snapshot's xmin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from common.db import is_postgres, sql
from common.db.columns import array_literal, label_case, read_columns
from common.db.parallel import DbThread, bulk_read_settings, side_connections_usable, snapshot_export
from labeling.models import (
    REOPEN_VALID_SQL,
    Annotation,
    GroundTruth,
    GroundTruthMethod,
    Item,
    ItemStatus,
    LabelClass,
    Membership,
    Prediction,
    PredProbsSource,
    ReopenRequest,
    Role,
)
from labeling.stats import consensus

STATUSES = list(ItemStatus.values)
METHODS = list(GroundTruthMethod.values)
READ_WORK_MEM = "256MB"
# Who can still be asked for one more annotation when an item is reopened.
ANNOTATING_ROLES = (Role.ANNOTATOR,)


@dataclass
class Snapshot:
    project_id: int
    label_keys: list[str]
    snapshot_at: object
    max_annotation_id: int | None
    item_ids: np.ndarray  # N, sorted
    annotator_ids: np.ndarray  # M, sorted
    labels: np.ndarray  # N × M float (NaN = not labeled)
    n_annotations: int
    n_ignored: int
    prod_probs: np.ndarray | None  # N × K when every item has a usable production prediction
    model_versions: list[str] = field(default_factory=list)
    texts: list[str] | None = None
    numeric: np.ndarray | None = None
    annotator_members: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # The items' state, in item_ids order (filled by quality_snapshot_complete when read alongside scoring):
    status: np.ndarray | None = None  # N object (ItemStatus values)
    required: np.ndarray | None = None  # N int
    annotation_count: np.ndarray | None = None  # N int
    gt_label: np.ndarray | None = None  # N object ("" = none)
    gt_method: np.ndarray | None = None  # N object ("" = none)
    version: np.ndarray | None = None  # N int: the row's xmin on PostgreSQL (any update changes it), else 0
    # PostgreSQL, read in a snapshot transaction of its own: the snapshot's xmin (32 bits). Every row
    # version the snapshot did not see was written by this transaction id or a later one
    # (labeling.services.quality.write._changed).
    xmin_horizon: int | None = None
    pending_items: DbThread | None = None  # the reader still at work, if any


class _OnConnection:
    """bulk_read_settings runs its statements on a cursor; this one runs them through common.db.sql."""

    execute = staticmethod(sql.execute)


def _tables():
    return {
        "a": Annotation._meta.db_table,
        "i": Item._meta.db_table,
        "g": GroundTruth._meta.db_table,
        "p": Prediction._meta.db_table,
        "r": ReopenRequest._meta.db_table,
    }


def quality_snapshot_read(*, project_id: int) -> Snapshot:
    """Read everything a run needs in one consistent snapshot.

    On PostgreSQL, called outside a transaction (as a run is), the reads go on side by side: the
    newest predictions on a second connection that imports this transaction's snapshot while this
    one reads the annotations, then the items' state on another one, which keeps reading while
    scoring starts (scoring needs only labels and pred_probs). quality_snapshot_complete() waits for
    it. Inside a transaction (tests) or on SQLite, everything is read here, one query after another."""
    parallel = side_connections_usable()
    with transaction.atomic():
        if is_postgres():
            if parallel:
                sql.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            bulk_read_settings(_OnConnection, READ_WORK_MEM)
        return _read_snapshot(project_id, snapshot_id=snapshot_export() if parallel else None)


def quality_snapshot_complete(snap: Snapshot) -> Snapshot:
    """Wait for the items' state (status, counters, ground truth, row version) if it is still being
    read on the snapshot, and put it on `snap`."""
    if snap.pending_items is not None:
        reader, snap.pending_items = snap.pending_items, None
        _put_item_state(snap, reader.result())
    return snap


def _read_snapshot(project_id: int, *, snapshot_id: str | None) -> Snapshot:
    t = _tables()
    label_keys = list(
        LabelClass.objects.filter(project_id=project_id).order_by("position", "id").values_list("key", flat=True)
    )
    xmin_horizon = None
    if is_postgres():
        snapshot_at, horizon = sql.fetchone(
            "SELECT now(), mod(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, 4294967296)"
        )
        if snapshot_id is not None:  # (a REPEATABLE READ transaction: this snapshot is the one every read uses)
            xmin_horizon = int(horizon)
    else:
        snapshot_at = timezone.now()
    predictions = None
    if snapshot_id is not None and label_keys:
        predictions = DbThread(
            partial(_read_latest_predictions, project_id, label_keys, False),
            snapshot_id=snapshot_id,
            work_mem=READ_WORK_MEM,
        )

    label_sql, label_params = label_case("a.label", label_keys)
    ann = read_columns(
        f"SELECT a.item_id, a.annotator_id, {label_sql} FROM {t['a']} a WHERE a.project_id = %s",
        [*label_params, project_id],
        {"item_id": np.int64, "annotator_id": np.int32, "label": np.int16},
    )
    # (one probe of the (project, id) index, in the same snapshot)
    max_annotation_id = (
        Annotation.objects.filter(project_id=project_id).order_by("-id").values_list("id", flat=True).first()
    )
    codes = ann["label"]
    known = codes >= 0
    n_annotations, n_ignored = len(codes), int((~known).sum())
    # (pandas' hash-based factorize: np.unique(return_inverse=True) sorts every value)
    item_idx, item_ids = pd.factorize(ann["item_id"][known], sort=True)
    annot_idx, annotator_ids = pd.factorize(ann["annotator_id"][known], sort=True)
    annotator_ids = annotator_ids.astype(np.int64)
    labels = np.full((len(item_ids), len(annotator_ids)), np.nan)
    labels[item_idx, annot_idx] = codes[known]
    del ann, codes, known, item_idx, annot_idx

    prod_probs, versions = None, []
    if len(item_ids) and label_keys:
        counted = (
            predictions.result() if predictions is not None else _read_latest_predictions(project_id, label_keys, False)
        )
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
        sorted(
            Membership.objects.filter(project_id=project_id, role__in=ANNOTATING_ROLES).values_list(
                "user_id", flat=True
            )
        ),
        dtype=np.int64,
    )
    # The items' state is read while scoring runs (scoring needs only labels and pred_probs); started
    # only now, so that it does not compete with the predictions' read for the cores.
    read_state = partial(_read_item_state, project_id, item_ids, label_keys)
    items = DbThread(read_state, snapshot_id=snapshot_id, work_mem=READ_WORK_MEM) if snapshot_id is not None else None
    snap = Snapshot(
        project_id=project_id,
        label_keys=label_keys,
        snapshot_at=snapshot_at,
        max_annotation_id=max_annotation_id,
        item_ids=item_ids,
        annotator_ids=annotator_ids,
        labels=labels,
        n_annotations=n_annotations,
        n_ignored=n_ignored,
        prod_probs=prod_probs,
        model_versions=versions,
        texts=texts,
        numeric=numeric,
        annotator_members=members,
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
            {
                "id": np.int64,
                "status": np.int64,
                "required": np.int64,
                "count": np.int64,
                "gt_label": np.int64,
                "gt_method": np.int64,
                "version": np.int64,
                "pending": np.int64,
            },
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
        "status": np.array(STATUSES + [""], dtype=object)[pick["status"]],
        "required": pick["required"],
        "annotation_count": pick["count"],
        "gt_label": label_names[pick["gt_label"]],
        "gt_method": method_names[pick["gt_method"]],
        "version": pick["version"],
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
        annotated_sql = (
            f"EXISTS (SELECT 1 FROM {t['a']} a WHERE a.item_id = i.id)" if exact else "i.annotation_count > 0"
        )
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
        frame = read_columns(
            latest,
            [project_id],
            {"item_id": np.int64, "model_version": str, "probs": (float, k), "has_vector": np.int16},
        )
        without = np.nonzero(frame.pop("has_vector") != 1)[0]
        if len(without):
            from_jsonb = (
                "(SELECT string_agg(float8send(coalesce((p.probabilities ->> u.key)::float8, 'NaN')), ''::bytea ORDER BY u.o) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS u(key, o))"
            )
            converted = read_columns(
                f"SELECT DISTINCT ON (p.item_id) p.item_id, {from_jsonb} FROM {t['p']} p "
                f"WHERE p.item_id = ANY(%s::bigint[]) AND p.probabilities IS NOT NULL {order}",
                [label_keys, array_literal(frame["item_id"][without])],
                {"item_id": np.int64, "probs": (float, k)},
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
    for item_id, mv, raw in qs.order_by("item_id", "predicted_at", "id").values_list(
        "item_id", "model_version", "probabilities"
    ):
        latest[item_id] = (mv, raw)
    ids = np.array(sorted(latest), dtype=np.int64)
    return {
        "item_id": ids,
        "model_version": np.array([latest[i][0] for i in ids.tolist()], dtype=object),
        "probs": np.array(
            [[_prob(latest[i][1], key) for key in label_keys] for i in ids.tolist()], dtype=float
        ).reshape(-1, k),
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
        Item.objects.filter(project_id=project_id, pk__in=item_ids.tolist())
        .values_list("pk", "payload")
        .iterator(chunk_size=5000)
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
        [
            [
                float(r[k]) if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) else np.nan
                for k in keys
            ]
            for r in rows
        ]
    )
    numeric[~np.isfinite(numeric)] = np.nan
    return None, numeric


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
    return consensus.normalize_pred_probs(
        consensus.class_prior_pred_probs(train, k, len(train), rng=rng)
    ), PredProbsSource.CLASS_PRIOR
