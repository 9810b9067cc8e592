"""Reporting many bugs in one request: each report is validated as `bug_report` validates one, and
the batch is all or nothing (as item ingestion and a report's failures are): one bad report refuses
the batch with every report's error, before any write. The reads are set-based (tags, label keys,
items and prediction times once per batch and project); the writes happen in one transaction,
through `grouping_batch.bugs_file_many`."""

from dataclasses import dataclass

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from bugqueue.models import Tag
from bugqueue.services.grouping import BugDraft, FilingResult, default_fingerprint
from bugqueue.services.grouping_batch import Filing, bugs_file_many
from bugqueue.services.report import (
    _assign_payload_ids,
    _check_fields,
    _check_links,
    _Failure,
    _failure_data,
    _known_items,
    _prediction_times,
    _validate_failures,
)
from common.errors import Conflict, DomainError, TooLarge, ValidationFailed
from labeling.models import Project
from labeling.selectors.projects import project_label_keys
from labeling.services.ingestion import items_ingest

MAX_REPORTS_PER_BATCH = 500
DEADLOCK_ATTEMPTS = 3


@dataclass
class BatchReport:
    """One report of a batch, its project already access-checked: the report's fields (title, kind,
    description, tags, priority, fingerprint, model_version), its raw failures, and whether the
    reporter may add items to the project."""

    project: Project
    fields: dict
    failures: list | None = None
    may_add_items: bool = False


@dataclass
class _Checked:
    index: int
    project: Project
    fingerprint: str
    draft: BugDraft
    failures: list[_Failure]
    may_add_items: bool


def _resolve_tags(reports: dict[int, BatchReport], errors: dict[int, DomainError]) -> dict[int, tuple]:
    """Tag slugs -> tag ids per report, in one query; an unknown slug is that report's error."""
    slugs_of = {}
    for i, report in reports.items():
        slugs = report.fields.get("tags") or []
        if not isinstance(slugs, (list, tuple)) or not all(isinstance(s, str) for s in slugs):
            errors[i] = ValidationFailed(
                "tags must be a list of tag slugs.", fields={"tags": ["Must be a list of strings."]}
            )
            continue
        slugs_of[i] = list(dict.fromkeys(s.strip() for s in slugs))
    wanted = {s for slugs in slugs_of.values() for s in slugs}
    found = dict(Tag.objects.filter(slug__in=wanted).values_list("slug", "pk")) if wanted else {}
    out = {}
    for i, slugs in slugs_of.items():
        unknown = [s for s in slugs if s not in found]
        if unknown:
            errors[i] = ValidationFailed(
                f"Unknown tag{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} (see GET /api/tags).",
                fields={"tags": [f"Unknown tag {s!r}." for s in unknown]},
            )
        else:
            out[i] = tuple(found[s] for s in slugs)
    return out


def _check(reports: list, *, reporter) -> tuple[list[_Checked], dict[int, DomainError]]:
    """Every report checked; reads only. Returns the good ones and the errors by index."""
    errors: dict[int, DomainError] = {i: r for i, r in enumerate(reports) if isinstance(r, DomainError)}
    pending = {i: r for i, r in enumerate(reports) if i not in errors}
    tag_ids = _resolve_tags(pending, errors)
    label_keys: dict[int, set] = {}
    note = f"Reported by {reporter.username}." if reporter is not None else "Reported."
    checked = []
    for i, report in pending.items():
        if i in errors:
            continue
        values = report.fields
        try:
            cleaned = _check_fields(
                title=values.get("title"),
                kind=values.get("kind"),
                description=values.get("description", ""),
                priority=values.get("priority"),
                model_version=values.get("model_version", ""),
                fingerprint=values.get("fingerprint"),
            )
            project = report.project
            if report.failures and project.pk not in label_keys:
                label_keys[project.pk] = set(project_label_keys(project=project))
            failures = _validate_failures(
                report.failures,
                label_keys=label_keys.get(project.pk, set()),
                default_model_version=cleaned.model_version,
            )
        except DomainError as exc:
            errors[i] = exc
            continue
        draft = BugDraft(
            title=cleaned.title,
            kind=cleaned.kind,
            description=cleaned.description,
            priority=cleaned.priority,
            model_version=cleaned.model_version,
            reporter_id=getattr(reporter, "pk", None),
            tag_ids=tag_ids[i],
            note=note,
        )
        fingerprint = cleaned.fingerprint or default_fingerprint(kind=cleaned.kind, title=cleaned.title)
        checked.append(_Checked(i, project, fingerprint, draft, failures, report.may_add_items))
    return checked, errors


def _link(checked: list[_Checked], errors: dict[int, DomainError]):
    """Per project: the known items of every failure (one query), each report's links checked (its
    error otherwise), the items the good reports add. Returns [(project, reports, ids, to_ingest)]."""
    by_project: dict[int, list[_Checked]] = {}
    for c in checked:
        _assign_payload_ids(c.failures)
        by_project.setdefault(c.project.pk, []).append(c)
    out = []
    for reports in by_project.values():
        project = reports[0].project
        wanted = [f.external_id for c in reports for f in c.failures]
        ids = _known_items(project=project, external_ids=wanted) if wanted else {}
        good, to_ingest = [], {}
        for c in reports:
            try:
                new = _check_links(failures=c.failures, ids=ids, may_add_items=c.may_add_items)
            except DomainError as exc:
                errors[c.index] = exc
                continue
            to_ingest.update(new)
            good.append(c)
        out.append((project, good, ids, to_ingest))
    return out


def _write(linked, *, reporter, now) -> dict[int, FilingResult]:
    results = {}
    for project, reports, ids, to_ingest in linked:
        if not reports:
            continue
        if to_ingest:
            items_ingest(project=project, rows=list(to_ingest.values()))
            ids = {**ids, **_known_items(project=project, external_ids=list(to_ingest))}
        all_failures = [f for c in reports for f in c.failures]
        times = _prediction_times(failures=all_failures, ids=ids)
        filings = [
            Filing(
                fingerprint=c.fingerprint,
                draft=c.draft,
                failures=_failure_data(failures=c.failures, ids=ids, times=times),
            )
            for c in reports
        ]
        for c, result in zip(reports, bugs_file_many(project_id=project.pk, filings=filings, now=now, actor=reporter)):
            results[c.index] = result
    return results


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def _refuse(errors: dict[int, DomainError], total: int) -> ValidationFailed:
    first = min(errors)
    return ValidationFailed(
        f"{len(errors)} of {total} reports cannot be filed; nothing was written. Report {first}: "
        f"{errors[first].message}",
        fields={
            "reports": {
                str(i): {"code": e.code, "message": e.message, **({"fields": e.fields} if e.fields else {})}
                for i, e in sorted(errors.items())
            }
        },
    )


def bug_report_batch(*, reporter, reports: list, now=None) -> list[FilingResult]:
    """File a batch of reports (BatchReport, or the DomainError a caller already found for one).
    Returns each report's FilingResult, in order.

    Every report is checked before the first write, as `bug_report` checks one; any bad report
    refuses the whole batch (ValidationFailed, its `fields.reports` holding each bad report's error
    by index). The reports are then written in one transaction (retried whole if PostgreSQL breaks
    a deadlock between two batches). Reports of one fingerprint land on one bug, whatever batches
    run at the same time."""
    if len(reports) > MAX_REPORTS_PER_BATCH:
        raise TooLarge(f"A batch carries at most {MAX_REPORTS_PER_BATCH} reports; this one has {len(reports):,}.")
    if not reports:
        raise ValidationFailed("The batch is empty: send at least one report.")
    now = now or timezone.now()
    checked, errors = _check(reports, reporter=reporter)
    linked = _link(checked, errors)
    if errors:
        raise _refuse(errors, len(reports))
    attempts = 1 if connection.in_atomic_block else DEADLOCK_ATTEMPTS
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                results = _write(linked, reporter=reporter, now=now)
            break
        except OperationalError as exc:
            if not _is_deadlock(exc) or attempt == attempts - 1:
                raise
    else:  # pragma: no cover - the loop either breaks or raises
        raise Conflict("The batch kept colliding with another one; send it again.", code="retry")
    return [results[i] for i in range(len(reports))]
