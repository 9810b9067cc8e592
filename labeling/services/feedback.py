"""Late ground truth from production, and the feedback-delay SLO.

An import batch (``POST /api/projects/{id}/ground-truth``) is validated whole; every accepted row is
kept as a GroundTruthObservation, one per (external_id, source, label), so re-sending changes
nothing. A new observation sets an item's missing truth, confirms or (when observed later) replaces
an imported one, never overwrites a human decision (the item goes to review as ``conflict``), and
waits as ``pending`` until its item is ingested. The periodic SLO check measures the delay with
Kaplan-Meier and, after commit when the state flips, sends ``feedback_slo_changed`` and emits the
event slo.breached or slo.recovered (common.events). Long because the import's rules (set, confirm,
replace, conflict, pending) are read together with the writes they decide.
"""

import math
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from common.db.locks import lock_rows
from common.events import emit
from common.timestamps import parse_timestamp
from labeling.models import (
    HUMAN_CHANNEL,
    GroundTruth,
    GroundTruthMethod,
    GroundTruthObservation,
    Item,
    ItemStatus,
    ObservationOutcome,
    Prediction,
    Project,
)
from labeling.selectors.feedback import DelayFilters, feedback_slo_measure
from labeling.selectors.projects import project_label_keys
from labeling.services.feedback_rollup import feedback_rollup_reconcile, feedback_rollup_refresh, feedback_state_lock
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.rows import batch_check, rows_parse
from labeling.signals import feedback_slo_changed

IMPORT_FIELDS = {"external_id", "label", "observed_at", "source"}
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
RESERVED_SOURCES = {HUMAN_CHANNEL}
CLOCK_SKEW = timedelta(minutes=5)
UNCHANGED = "unchanged"  # outcome reported for a row already received (not stored again)


@dataclass(frozen=True)
class ParsedObservation:
    index: int
    external_id: str
    label: str
    observed_at: datetime
    source: str


@dataclass
class ImportResult:
    rows: list = field(default_factory=list)  # one {"index", "external_id", "outcome", "message"?} per row

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r["outcome"] == outcome)

    @property
    def created(self) -> int:
        return sum(1 for r in self.rows if r["outcome"] != UNCHANGED)

    def as_dict(self) -> dict:
        return {
            "received": len(self.rows),
            "applied": self.count(ObservationOutcome.APPLIED),
            "confirmed": self.count(ObservationOutcome.CONFIRMED),
            "conflicts": self.count(ObservationOutcome.CONFLICT),
            "superseded": self.count(ObservationOutcome.SUPERSEDED),
            "pending": self.count(ObservationOutcome.PENDING),
            "unchanged": self.count(UNCHANGED),
            "rows": self.rows,
        }


def gt_observations_validate(*, project: Project, rows: list) -> list[ParsedObservation]:
    """Validate a whole batch; raise ValidationFailed listing every bad row."""
    batch_check(rows)
    label_keys = set(project_label_keys(project=project))
    now = timezone.now()
    seen = {}

    def parse_row(i, row) -> ParsedObservation:
        if not isinstance(row, dict):
            raise ValueError("row must be an object.")
        unknown = set(row) - IMPORT_FIELDS
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}.")
        ext = row.get("external_id")
        if isinstance(ext, int) and not isinstance(ext, bool):
            ext = str(ext)
        if not isinstance(ext, str) or not ext.strip() or len(ext) > 255:
            raise ValueError("external_id must be a non-empty string of at most 255 characters.")
        label = row.get("label")
        if not isinstance(label, str) or label not in label_keys:
            raise ValueError(f"label {label!r} is not a label of this project ({', '.join(sorted(label_keys))}).")
        source = row.get("source", "")
        if source is None:
            source = ""
        if not isinstance(source, str) or (source and not SOURCE_RE.match(source)):
            raise ValueError("source must be 1..64 characters of a-z, 0-9, _ . : - (starting with a letter or digit).")
        if source in RESERVED_SOURCES:
            raise ValueError(f"source {source!r} is reserved for labels decided by people.")
        observed = row.get("observed_at")
        observed_at = now if observed is None else parse_timestamp(observed, field="observed_at")
        if observed_at > now + CLOCK_SKEW:
            raise ValueError(f"observed_at {observed!r} is in the future.")
        key = (ext, source)
        if key in seen:
            raise ValueError(
                f"external_id {ext!r} from source {source!r} appears twice in this batch (first at row {seen[key]})."
            )
        seen[key] = i
        return ParsedObservation(i, ext, label, observed_at, source)

    return rows_parse(rows, parse_row)


def ground_truth_import(*, project: Project, rows: list, actor=None) -> ImportResult:
    parsed = gt_observations_validate(project=project, rows=rows)
    return _import_write(project=project, parsed=parsed, actor=actor)


@transaction.atomic
def _import_write(*, project: Project, parsed: list[ParsedObservation], actor) -> ImportResult:
    now = timezone.now()
    ext_ids = sorted({p.external_id for p in parsed})
    # Lock the known items in primary-key order (the ground-truth service locks them the same way).
    locked = lock_rows(Item.objects.filter(project=project, external_id__in=ext_ids))
    item_of = {ext: pk for pk, ext in Item.objects.filter(pk__in=locked).values_list("pk", "external_id")}
    existing = set(
        GroundTruthObservation.objects.filter(project=project, external_id__in=ext_ids).values_list(
            "external_id", "source", "label"
        )
    )
    result = {}
    new = []
    for p in parsed:
        if (p.external_id, p.source, p.label) in existing:
            result[p.index] = (UNCHANGED, "Already received; nothing changed.")
        else:
            new.append(
                GroundTruthObservation(
                    project=project,
                    item_id=item_of.get(p.external_id),
                    external_id=p.external_id,
                    label=p.label,
                    source=p.source,
                    observed_at=p.observed_at,
                    received_at=now,
                    outcome=ObservationOutcome.PENDING,
                    actor=actor,
                )
            )
    messages = _apply(project_id=project.pk, observations=new, actor=actor)
    GroundTruthObservation.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    by_key = {(o.external_id, o.source, o.label): o for o in new}
    out = ImportResult()
    for p in parsed:
        if p.index in result:
            outcome, message = result[p.index]
        else:
            obs = by_key[(p.external_id, p.source, p.label)]
            outcome, message = obs.outcome, messages.get(id(obs), "")
        row = {"index": p.index, "external_id": p.external_id, "outcome": str(outcome)}
        if message:
            row["message"] = message
        out.rows.append(row)
    return out


def _apply(*, project_id: int, observations: list, actor) -> dict:
    """Decide each observation's outcome (set on the objects) and write the ground-truth decisions.

    Items must already be locked by the caller. Returns {id(observation): message} for the rows
    whose outcome deserves an explanation."""
    known = [o for o in observations if o.item_id is not None]
    messages = {}
    for o in observations:
        if o.item_id is None:
            o.outcome = ObservationOutcome.PENDING
            messages[id(o)] = (
                "No item with this external_id in the project yet: kept, and applied when the item is ingested."
            )
    if not known:
        return messages
    item_ids = sorted({o.item_id for o in known})
    state = {
        gt.item_id: (gt.label, gt.method, gt.decided_at) for gt in GroundTruth.objects.filter(item_id__in=item_ids)
    }
    in_force = dict(
        GroundTruthObservation.objects.filter(item_id__in=item_ids, outcome=ObservationOutcome.APPLIED)
        .values("item_id")
        .annotate(at=Max("observed_at"))
        .values_list("item_id", "at")
    )
    decisions, conflicted = [], {}
    for o in sorted(known, key=lambda o: (o.item_id, o.observed_at)):
        current = state.get(o.item_id)
        if current is None:
            o.outcome = ObservationOutcome.APPLIED
        elif current[0] == o.label:
            o.outcome = ObservationOutcome.CONFIRMED
        elif current[1] == GroundTruthMethod.IMPORTED:
            since = in_force.get(o.item_id, current[2])
            o.outcome = ObservationOutcome.APPLIED if o.observed_at >= since else ObservationOutcome.SUPERSEDED
            if o.outcome == ObservationOutcome.SUPERSEDED:
                messages[id(o)] = (
                    f"Observed before the imported label {current[0]!r} now in force "
                    f"(observed {since.isoformat()}): kept, not applied."
                )
        else:
            o.outcome = ObservationOutcome.CONFLICT
            conflicted[o.item_id] = current
            messages[id(o)] = (
                f"Disagrees with the {current[1]} label {current[0]!r}: neither is overwritten; "
                "the item is marked conflict and goes to the review queue."
            )
        if o.outcome == ObservationOutcome.APPLIED:
            decisions.append(
                Decision(
                    item_id=o.item_id,
                    label=o.label,
                    method=GroundTruthMethod.IMPORTED,
                    source=o.source,
                    arrived_at=o.observed_at,
                    note=f"imported from {o.source or 'production'}",
                )
            )
            state[o.item_id] = (o.label, GroundTruthMethod.IMPORTED, o.observed_at)
            in_force[o.item_id] = o.observed_at
    # A decision repeating the current label and method changes no label (no history row); it only
    # sets the item's status: that is how a conflict reaches the review queue without overwriting.
    for item_id, (label, method, _) in conflicted.items():
        decisions.append(Decision(item_id=item_id, label=label, method=method, status=ItemStatus.CONFLICT))
    if decisions:
        ground_truth_set_many(project_id=project_id, decisions=decisions, actor=actor)
    return messages


ATTACH_BATCH = 5000


def gt_observations_attach_pending(*, project_id: int) -> int:
    """Apply pending observations whose item has been ingested since. Returns how many were attached."""
    total = 0
    while True:
        n = _attach_batch(project_id)
        total += n
        if n < ATTACH_BATCH:
            return total


@transaction.atomic
def _attach_batch(project_id: int) -> int:
    pending = GroundTruthObservation.objects.filter(project_id=project_id, item__isnull=True)
    item_of = dict(
        Item.objects.filter(project_id=project_id, external_id__in=pending.values("external_id")).values_list(
            "external_id", "pk"
        )[:ATTACH_BATCH]
    )
    if not item_of:
        return 0
    lock_rows(Item.objects.filter(pk__in=item_of.values()))
    observations = list(
        GroundTruthObservation.objects.filter(pk__in=lock_rows(pending.filter(external_id__in=list(item_of)))).order_by(
            "id"
        )
    )
    for o in observations:
        o.item_id = item_of[o.external_id]
    _apply(project_id=project_id, observations=observations, actor=None)
    GroundTruthObservation.objects.bulk_update(observations, ["item", "outcome"], batch_size=2000)
    return len(observations)


# --- SLO ---------------------------------------------------------------------------------------

SLO_WINDOW_MIN_DAYS = 28


@dataclass(frozen=True)
class SloCheck:
    breached: bool
    observed_seconds: float | None
    target_seconds: int
    quantile: float
    changed: bool


def slo_window_days(project: Project) -> int:
    """The periodic check looks at predictions of the last max(28 days, 4 x target) days."""
    return max(SLO_WINDOW_MIN_DAYS, math.ceil(4 * project.slo_target_seconds / 86400))


def _slo_text(quantile, observed_seconds, target_seconds) -> str:
    share = f"{float(quantile):.0%}" if quantile is not None else "?"
    observed = "unknown" if observed_seconds is None else f"{float(observed_seconds):,.0f} s"
    return f"p{share.rstrip('%')} delay {observed}, target {target_seconds:,} s"


def _emit_slo_event(project_id, breached, observed_seconds, target_seconds, quantile):
    word = "breached" if breached else "recovered"
    emit(
        project_id=project_id,
        type=f"slo.{word}",
        subject=f"Feedback-delay SLO {word}: {_slo_text(quantile, observed_seconds, target_seconds)}",
        data={
            "quantile": None if quantile is None else float(quantile),
            "observed_seconds": None if observed_seconds is None else float(observed_seconds),
            "target_seconds": target_seconds,
        },
        path=f"/projects/{project_id}/delay",
        key="slo.feedback_delay",
    )


def _announce_slo(project_id, breached, observed_seconds, target_seconds, quantile):
    feedback_slo_changed.send(
        sender=Project,
        project_id=project_id,
        breached=breached,
        observed_seconds=observed_seconds,
        target_seconds=target_seconds,
        quantile=quantile,
    )


@transaction.atomic
def feedback_slo_check(*, project_id: int, now=None) -> SloCheck:
    """Measure the SLO over the rolling window and store it; announce a breach or a recovery once.

    The state row is locked, so concurrent checks serialize and only the first to see a flip
    announces it."""
    now = now or timezone.now()
    state = feedback_state_lock(project_id)
    project = Project.objects.get(pk=project_id)
    since = (now - timedelta(days=slo_window_days(project))).date()
    slo = feedback_slo_measure(project=project, filters=DelayFilters(since=since), now=now)
    changed = slo["breached"] != state.slo_breached
    state.slo_observed_seconds = slo["observed_seconds"]
    state.slo_checked_at = now
    if changed:
        state.slo_breached = slo["breached"]
        state.slo_changed_at = now
        transaction.on_commit(
            partial(
                _announce_slo,
                project_id,
                slo["breached"],
                slo["observed_seconds"],
                slo["target_seconds"],
                slo["quantile"],
            )
        )
        _emit_slo_event(project_id, slo["breached"], slo["observed_seconds"], slo["target_seconds"], slo["quantile"])
    state.save(update_fields=["slo_breached", "slo_observed_seconds", "slo_checked_at", "slo_changed_at"])
    return SloCheck(slo["breached"], slo["observed_seconds"], slo["target_seconds"], slo["quantile"], changed)


def feedback_project_refresh(*, project_id: int) -> None:
    """Attach pending imported truth and bring the delay rollups up to date (a deleted project: nothing)."""
    if not Project.objects.filter(pk=project_id).exists():
        return
    gt_observations_attach_pending(project_id=project_id)
    feedback_rollup_refresh(project_id=project_id)


def feedback_project_tick(*, project_id: int) -> None:
    """What the periodic task does for one project: attach pending truth, refresh rollups, check the SLO."""
    if not Project.objects.filter(pk=project_id).exists():
        return
    gt_observations_attach_pending(project_id=project_id)
    feedback_rollup_refresh(project_id=project_id)
    feedback_slo_check(project_id=project_id)


def feedback_project_reconcile(*, project_id: int) -> int:
    """Mark the prediction days whose rollups drifted, then refresh; returns how many days drifted."""
    if not Project.objects.filter(pk=project_id).exists():
        return 0
    drifted = feedback_rollup_reconcile(project_id=project_id)
    feedback_rollup_refresh(project_id=project_id)
    return len(drifted)


# --- demo --------------------------------------------------------------------------------------

DEMO_SOURCES = (("chargeback", 6 * 86400, 0.6), ("user_correction", 1.5 * 86400, 0.9))


def feedback_demo_seed(*, project: Project, seed: int = 11) -> ImportResult:
    """Ground truth for part of the demo predictions, arriving with realistic (lognormal) delays from
    two production sources; an observation whose arrival time is still in the future is not sent.
    Idempotent: observations are keyed by (external_id, source, label), so a re-run sends nothing new."""
    now = timezone.now()
    rows = []
    preds = (
        Prediction.objects.filter(item__project=project)
        .values_list("item__external_id", "label", "probabilities", "predicted_at")
        .order_by("item__external_id", "model_version")
    )
    labels = project_label_keys(project=project)
    seen = set()
    for ext, label, probs, predicted_at in preds:
        if ext in seen:
            continue
        seen.add(ext)
        rng = random.Random(f"{seed}:{ext}")
        if rng.random() > 0.85:  # some predictions never get ground truth
            continue
        source, median, sigma = DEMO_SOURCES[0] if rng.random() < 0.4 else DEMO_SOURCES[1]
        arrives = predicted_at + timedelta(seconds=rng.lognormvariate(math.log(median), sigma))
        if arrives > now:
            continue
        conf = max(probs.values()) if isinstance(probs, dict) and probs else 0.8
        truth = label if rng.random() < conf else rng.choice([k for k in labels if k != label] or [label])
        rows.append({"external_id": ext, "label": truth, "observed_at": arrives.isoformat(), "source": source})
    result = ImportResult()
    for start in range(0, len(rows), 5000):
        part = ground_truth_import(project=project, rows=rows[start : start + 5000])
        result.rows.extend(part.rows)
    feedback_rollup_refresh(project_id=project.pk)
    return result
