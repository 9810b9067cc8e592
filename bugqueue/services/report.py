"""Reporting a bug: validate the report and its failures before the first write, link each
failure to an item (a failure whose payload names no known item becomes a new item, through
labeling's ingestion service), then file it (bugqueue.services.grouping.bug_file)."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from bugqueue.models import BugKind, Priority
from bugqueue.selectors.bugs import tags_resolve
from bugqueue.services.grouping import BugDraft, FailureData, FilingResult, bug_file, default_fingerprint
from common.errors import Forbidden, TooLarge, ValidationFailed
from common.timestamps import check_timestamp, parse_timestamp
from labeling.models import Item, Prediction, Project
from labeling.selectors.projects import project_label_keys
from labeling.services.ingestion import items_ingest

MAX_FAILURES_PER_REPORT = 1000
FAILURE_FIELDS = {"external_id", "payload", "predicted_label", "expected_label", "model_version", "predicted_at"}


def _text(value, *, name: str, max_length: int, required: bool = False, errors: dict) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[name] = ["Must be a string."]
        return ""
    value = value.strip()
    if required and not value:
        errors[name] = ["This field is required."]
    elif len(value) > max_length:
        errors[name] = [f"At most {max_length} characters."]
    return value


@dataclass
class _Failure:
    index: int
    external_id: str
    payload: dict | None
    predicted_label: str
    expected_label: str | None
    model_version: str
    predicted_at: datetime | None


def _validate_failures(raw, *, label_keys: set, default_model_version: str) -> list[_Failure]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationFailed("failures must be a list.", fields={"failures": ["Must be a list."]})
    if len(raw) > MAX_FAILURES_PER_REPORT:
        raise TooLarge(f"A report carries at most {MAX_FAILURES_PER_REPORT:,} failures; this one has {len(raw):,}.")
    parsed, errors = [], {}
    for i, row in enumerate(raw):
        problems = []
        if not isinstance(row, dict):
            errors[str(i)] = ["Must be an object."]
            continue
        unknown = set(row) - FAILURE_FIELDS
        if unknown:
            problems.append(f"Unknown fields: {', '.join(sorted(map(str, unknown)))}.")
        ext = row.get("external_id")
        if isinstance(ext, int) and not isinstance(ext, bool):
            ext = str(ext)
        if ext is not None and (not isinstance(ext, str) or not ext.strip() or len(ext) > 255):
            problems.append("external_id must be a non-empty string of at most 255 characters.")
            ext = None
        payload = row.get("payload")
        if payload is not None and not isinstance(payload, dict):
            problems.append("payload must be a JSON object.")
        if row.get("external_id") is None and payload is None:
            problems.append("Give the failing input: external_id (an item of the project) or payload.")
        labels = {}
        for key in ("predicted_label", "expected_label"):
            value = row.get(key)
            if value is None or value == "":
                labels[key] = None
            elif not isinstance(value, str) or value not in label_keys:
                problems.append(f"{key} {value!r} is not a label of this project.")
            else:
                labels[key] = value
        mv = row.get("model_version", default_model_version)
        if mv is None:
            mv = default_model_version
        if not isinstance(mv, str) or len(mv) > 128:
            problems.append("model_version must be a string of at most 128 characters.")
            mv = ""
        at = row.get("predicted_at")
        if at is not None and not isinstance(at, datetime):
            try:
                at = parse_timestamp(at, field="predicted_at")
            except ValueError as exc:
                problems.append(str(exc))
                at = None
        elif isinstance(at, datetime):
            try:
                at = check_timestamp(at.replace(tzinfo=UTC) if timezone.is_naive(at) else at, field="predicted_at")
            except ValueError as exc:
                problems.append(str(exc))
                at = None
        if problems:
            errors[str(i)] = problems
            continue
        parsed.append(
            _Failure(
                i,
                (ext or "").strip(),
                payload,
                labels["predicted_label"] or "",
                labels["expected_label"],
                mv.strip(),
                at,
            )
        )
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(
            f"{len(errors)} of {len(raw)} failures are invalid; nothing was written. Failure {first}: {errors[first][0]}",
            fields={"failures": errors},
        )
    return parsed


def _payload_external_id(payload: dict) -> str:
    """A reported payload without an id becomes an item named after its content (idempotent)."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"bug-failure-{digest[:32]}"


def _assign_payload_ids(failures: list[_Failure]) -> None:
    for f in failures:
        if not f.external_id:
            f.external_id = _payload_external_id(f.payload)


def _check_links(*, failures: list[_Failure], ids: dict, may_add_items: bool) -> dict:
    """The items these failures would add ({external_id: row}), after checking that every failure
    names a known item or carries a payload, and that the caller may add items (ValidationFailed,
    Forbidden otherwise). `ids`: the project's known items among them, external_id -> pk."""
    unknown = [f for f in failures if f.external_id not in ids and f.payload is None]
    if unknown:
        raise ValidationFailed(
            f"{len(unknown)} failures name an item this project does not have (send its payload to create it). "
            f"Failure {unknown[0].index}: external_id {unknown[0].external_id!r}.",
            fields={"failures": {str(f.index): [f"Unknown external_id {f.external_id!r}."] for f in unknown}},
        )
    to_ingest = {}
    for f in failures:
        if f.external_id not in ids and f.external_id not in to_ingest:
            to_ingest[f.external_id] = {"external_id": f.external_id, "payload": f.payload}
    if to_ingest and not may_add_items:
        first = next(f for f in failures if f.external_id in to_ingest)
        raise Forbidden(
            f"{len(to_ingest)} failures would add new items to the project (failure {first.index} has a payload and "
            "no known external_id), and adding items needs the manager role. Name existing items by external_id.",
            fields={
                "failures": {
                    str(f.index): ["Would add a new item: needs the manager role."]
                    for f in failures
                    if f.external_id in to_ingest
                }
            },
        )
    return to_ingest


def _known_items(*, project: Project, external_ids) -> dict:
    return dict(
        Item.objects.filter(project=project, external_id__in=set(external_ids)).values_list("external_id", "pk")
    )


def _prediction_times(*, failures: list[_Failure], ids: dict) -> dict:
    """A failure that names a known item without a prediction time takes it from the item's
    production prediction for that model version (what the regression rule compares)."""
    missing_at = [f for f in failures if f.predicted_at is None and f.model_version]
    if not missing_at:
        return {}
    return {
        (item_id, mv): at
        for item_id, mv, at in Prediction.objects.filter(
            item_id__in={ids[f.external_id] for f in missing_at},
            model_version__in={f.model_version for f in missing_at},
        ).values_list("item_id", "model_version", "predicted_at")
    }


def _failure_data(*, failures: list[_Failure], ids: dict, times: dict) -> list[FailureData]:
    return [
        FailureData(
            item_id=ids[f.external_id],
            external_id=f.external_id,
            payload=f.payload,
            model_version=f.model_version,
            predicted_label=f.predicted_label,
            expected_label=f.expected_label,
            predicted_at=f.predicted_at or times.get((ids[f.external_id], f.model_version)),
        )
        for f in failures
    ]


def _failures_to_items(*, project: Project, failures: list[_Failure], may_add_items: bool) -> list[FailureData]:
    """Link every failure to an Item: existing ones by external_id; payloads without a known item
    are ingested as items of the project (through labeling's ingestion service), which only a
    caller who may ingest (`may_add_items`) can ask for: Forbidden otherwise, before any write."""
    if not failures:
        return []
    _assign_payload_ids(failures)
    ids = _known_items(project=project, external_ids=[f.external_id for f in failures])
    to_ingest = _check_links(failures=failures, ids=ids, may_add_items=may_add_items)
    if to_ingest:
        items_ingest(project=project, rows=list(to_ingest.values()))
        ids.update(_known_items(project=project, external_ids=list(to_ingest)))
    return _failure_data(failures=failures, ids=ids, times=_prediction_times(failures=failures, ids=ids))


@dataclass
class _Fields:
    title: str
    kind: str
    description: str
    priority: str
    model_version: str
    fingerprint: str | None


def _check_fields(*, title, kind, description, priority, model_version, fingerprint) -> _Fields:
    """A report's own fields, cleaned; ValidationFailed naming the first bad one (reads nothing)."""
    errors = {}
    title = _text(title, name="title", max_length=300, required=True, errors=errors)
    description = _text(description, name="description", max_length=20_000, errors=errors)
    if kind not in BugKind.values:
        errors["kind"] = [f"Must be one of {', '.join(BugKind.values)}."]
    if priority in (None, ""):
        priority = Priority.P2
    elif priority not in Priority.values:
        errors["priority"] = [f"Must be one of {', '.join(Priority.values)}."]
    model_version = _text(model_version, name="model_version", max_length=128, errors=errors)
    if fingerprint is not None:
        fingerprint = _text(fingerprint, name="fingerprint", max_length=255, required=True, errors=errors)
    if errors:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)
    return _Fields(title, kind, description, priority, model_version, fingerprint)


@transaction.atomic
def bug_report(
    *,
    project: Project,
    reporter,
    title,
    kind,
    description="",
    tags=None,
    priority=None,
    fingerprint=None,
    model_version="",
    failures=None,
    now=None,
    may_add_items: bool = True,
) -> FilingResult:
    """File a report: opens a bug, or adds its occurrences to the open bug of its fingerprint
    (or reopens a resolved one on regression, see bugqueue.services.grouping). A failure whose
    payload names no known item becomes a new item, which a reporter without the right to ingest
    (`may_add_items` False: not a manager) may not do: Forbidden, nothing written."""
    cleaned = _check_fields(
        title=title,
        kind=kind,
        description=description,
        priority=priority,
        model_version=model_version,
        fingerprint=fingerprint,
    )
    title, kind, description = cleaned.title, cleaned.kind, cleaned.description
    priority, model_version, fingerprint = cleaned.priority, cleaned.model_version, cleaned.fingerprint
    tag_rows = tags_resolve(tags or [])
    label_keys = set(project_label_keys(project=project)) if failures else set()
    parsed = _validate_failures(failures, label_keys=label_keys, default_model_version=model_version)
    fingerprint = fingerprint or default_fingerprint(kind=kind, title=title)

    # Writes start here; everything above only read.
    data = _failures_to_items(project=project, failures=parsed, may_add_items=may_add_items)
    draft = BugDraft(
        title=title,
        kind=kind,
        description=description,
        priority=priority,
        model_version=model_version,
        reporter_id=getattr(reporter, "pk", None),
        tag_ids=tuple(t.pk for t in tag_rows),
        note=f"Reported by {reporter.username}." if reporter is not None else "Reported.",
    )
    return bug_file(project_id=project.pk, fingerprint=fingerprint, draft=draft, failures=data, now=now, actor=reporter)
