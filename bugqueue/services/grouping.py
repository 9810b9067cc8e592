"""Filing into the queue: fingerprints, race-free grouping, the regression rule, failure recording
and occurrence counters. `bug_report` (API), the automatic filer (ground truth vs predictions) and
the feedback-delay filer all go through `bug_file`.

The database decides the grouping, not a check: a conditional UNIQUE constraint allows one *open*
bug per (project, fingerprint), and `_locate` runs PostgreSQL's upsert loop against it. A report
for a closed bug follows the regression rule (`is_newer_than_resolution`).

Times are the events' own, not the filing's: a failure happened when its prediction was made
(`FailureData.occurred_at`), so a bug filed today from predictions weeks old is first seen weeks
ago, and its occurrences are charted on those days. The bug's `created_at` is the filing time.
"""

import hashlib
import logging
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from bugqueue.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Bug,
    BugEvent,
    BugOccurrence,
    BugStatus,
    FailureExample,
    FailureSource,
    Priority,
)
from bugqueue.services.announce import announce_bug_filed
from bugqueue.services.snooze import snooze_check_filed
from common.errors import Conflict

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
_SPACES = re.compile(r"\s+")
# Variable parts a title may carry, stripped as Sentry's default grouping does: each becomes a
# placeholder word, so "item 123" and "item 456" (or two request ids) make one bug. Order matters:
# URLs and emails before quoted values, UUIDs before hex ids, hex ids before plain numbers.
_VARIABLE_PARTS = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+"), " _url_ "),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), " _email_ "),
    (
        re.compile(
            r"(?<!\w)(?:'[^'\n]*'|\"[^\"\n]*\"|\u2018[^\u2019\n]*\u2019|\u201c[^\u201d\n]*\u201d|`[^`\n]*`)(?!\w)"
        ),
        " _str_ ",
    ),
    (re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b"), " _uuid_ "),
    (re.compile(r"\b(?:0x[0-9a-f]+|(?=[0-9a-f]*\d)[0-9a-f]{8,})\b"), " _hex_ "),
    (re.compile(r"(?<![\w.])[-+]?\d+(?:[.,:/-]\d+)*(?!\w)"), " _num_ "),
)
_PUNCTUATION = re.compile(r"[^\w]+")


def normalize_title(title: str) -> str:
    """The grouping form of a title. Case, Unicode form, whitespace and punctuation do not make two
    bugs different, nor do variable parts (numbers, hex ids, UUIDs, quoted values, emails, URLs),
    which become placeholders (`_num_`, `_hex_`, `_uuid_`, `_str_`, `_email_`, `_url_`)."""
    text = unicodedata.normalize("NFKC", title or "").casefold()
    for pattern, placeholder in _VARIABLE_PARTS:
        text = pattern.sub(placeholder, text)
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


def default_fingerprint(*, kind: str, title: str) -> str:
    """The default grouping key: sha256 of kind + normalized title (the project is part of the
    uniqueness constraint, so the same title in two projects makes two bugs). A fingerprint a
    client sends is used exactly as sent (bugqueue.services.report)."""
    return hashlib.sha256(f"{kind}\x1f{normalize_title(title)}".encode()).hexdigest()


@dataclass(frozen=True)
class FailureData:
    """A validated failure ready to be recorded (item already resolved to an id, or None)."""

    item_id: int | None
    external_id: str = ""
    payload: dict | None = None
    model_version: str = ""
    predicted_label: str = ""
    expected_label: str | None = None
    predicted_at: datetime | None = None
    source: str = FailureSource.REPORT
    label_change_seq: int | None = None
    truth_at: datetime | None = None  # when its ground truth arrived (the automatic filer knows it)

    def occurred_at(self, filed_at: datetime) -> datetime:
        """When the failure happened: the prediction's time, else the ground truth's arrival, else
        the filing time."""
        return self.predicted_at or self.truth_at or filed_at


@dataclass(frozen=True)
class BugDraft:
    """What a new bug is opened with. Ignored when the report lands on an existing bug: its title,
    priority and tags are triage decisions by then, which a report must not overwrite."""

    title: str
    kind: str
    description: str = ""
    priority: str = Priority.P2
    model_version: str = ""
    reporter_id: int | None = None
    tag_ids: tuple = ()
    note: str = ""  # why it was filed, for the "created" history row


@dataclass
class FilingResult:
    bug: Bug
    created: bool
    regressed: bool
    occurrences: int
    recorded: int = 0  # failures written


def is_newer_than_resolution(*, bug: Bug, predicted_at: datetime | None, model_version: str) -> bool:
    """Whether one observation of a report is newer than the bug's resolution. A RESOLVED bug is
    reopened (status new, `regressed=true`) only if at least one observation is newer:
    - a failure whose prediction time is known is newer iff `predicted_at > resolved_at` (its model
      version does not matter: a late label for an old prediction never reopens);
    - a failure without a prediction time but with a model version is newer iff that version differs
      from `resolved_model_version` (the newest model version among the bug's failures when it was
      resolved): with no time, only a model the bug was not resolved against shows it is not old;
    - a report without failures (a user report, an SLO breach) is observed now: newer, unless it
      names the model version the bug was resolved against.
    Otherwise the report is recorded on the resolved bug without reopening it. A WON'T FIX bug takes
    the occurrence and stays closed; a DUPLICATE bug sends the report to the bug it duplicates."""
    if predicted_at is not None:
        return bug.resolved_at is None or predicted_at > bug.resolved_at
    if model_version:
        return model_version != bug.resolved_model_version
    return True


def _observations(draft: BugDraft, failures: list[FailureData]):
    if failures:
        return [(f.predicted_at, f.model_version) for f in failures]
    return [(None, draft.model_version)]


def _locate(
    *,
    project_id: int,
    fingerprint: str,
    draft: BugDraft,
    failures,
    now,
    actor_id,
    initial: int,
    seen=None,
    depth=0,
):
    """The bug a report goes into, locked; opens or reopens one when needed.
    Returns (bug, created, regressed). Must run inside a transaction.

    PostgreSQL's documented upsert loop ("merge_db" in the PL/pgSQL docs): lock the open bug if
    there is one; otherwise INSERT in a savepoint, and when the constraint refuses it (a concurrent
    report inserted first: the INSERT waits for that transaction, then fails) roll back to the
    savepoint and go round again, now finding the winner's bug. The SELECT is only the fast path for
    the common case (most reports hit an open bug); it never licenses the INSERT, which the
    constraint alone guards. Concurrent reports of one fingerprint therefore make exactly one bug,
    and every report's occurrences are added to it with F() under its row lock."""
    for _ in range(MAX_ATTEMPTS):
        bug = (
            Bug.objects.select_for_update()
            .filter(project_id=project_id, fingerprint=fingerprint, status__in=OPEN_STATUSES)
            .first()
        )
        if bug is not None:
            return bug, False, False
        closed = (
            Bug.objects.select_for_update()
            .filter(project_id=project_id, fingerprint=fingerprint, status__in=CLOSED_STATUSES)
            .order_by("-resolved_at", "-id")
            .first()
        )
        if closed is not None:
            if closed.status == BugStatus.DUPLICATE and closed.duplicate_of_id and depth < 3:
                target = Bug.objects.filter(pk=closed.duplicate_of_id).values_list("fingerprint", flat=True).first()
                if target is not None and target != fingerprint:
                    return _locate(
                        project_id=project_id,
                        fingerprint=target,
                        draft=draft,
                        failures=failures,
                        now=now,
                        actor_id=actor_id,
                        initial=initial,
                        seen=seen,
                        depth=depth + 1,
                    )
            if closed.status == BugStatus.RESOLVED and any(
                is_newer_than_resolution(bug=closed, predicted_at=at, model_version=mv)
                for at, mv in _observations(draft, failures)
            ):
                try:
                    with transaction.atomic():
                        _reopen_as_regression(bug=closed, now=now, failures=failures, draft=draft, actor_id=actor_id)
                except IntegrityError:
                    continue  # an open bug with this fingerprint appeared meanwhile: go round again
                return closed, False, True
            return closed, False, False
        try:
            with transaction.atomic():
                bug = Bug.objects.create(
                    project_id=project_id,
                    fingerprint=fingerprint,
                    title=draft.title[:300],
                    kind=draft.kind,
                    description=draft.description,
                    priority=draft.priority,
                    model_version=draft.model_version,
                    reporter_id=draft.reporter_id,
                    first_seen=seen[0] if seen else now,
                    last_seen=seen[1] if seen else now,
                    created_at=now,
                    occurrences=initial,
                )
        except IntegrityError:
            continue  # a concurrent report opened it first; the next round finds and locks it
        if draft.tag_ids:
            bug.tags.add(*draft.tag_ids)
        BugEvent.objects.create(
            bug=bug, actor_id=actor_id, field="created", to_value=BugStatus.NEW, note=draft.note, created_at=now
        )
        return bug, True, False
    raise Conflict("This fingerprint's bug kept changing while the report was filed; send it again.", code="retry")


def _reopen_as_regression(*, bug: Bug, now, failures, draft, actor_id=None):
    newest = max((f for f in failures if f.predicted_at), key=lambda f: f.predicted_at, default=None)
    if newest is not None and bug.resolved_at and newest.predicted_at > bug.resolved_at:
        why = (
            f"Regression: a failure predicted at {newest.predicted_at.isoformat(timespec='seconds')} "
            f"({newest.model_version or 'unknown model'}) is newer than the resolution at "
            f"{bug.resolved_at.isoformat(timespec='seconds')}."
        )
    else:
        versions = sorted({f.model_version for f in failures if f.model_version} or {draft.model_version} - {""})
        why = f"Regression: reported again after the resolution at {bug.resolved_at.isoformat(timespec='seconds')}" + (
            f" on model version {', '.join(versions)} (resolved against "
            f"{bug.resolved_model_version or 'no model version'})."
            if versions
            else "."
        )
    previous_status = bug.status
    # resolved_at and resolved_model_version stay (what the next resolution replaces); the history
    # keeps the resolution and its note.
    Bug.objects.filter(pk=bug.pk).update(
        status=BugStatus.NEW,
        regressed=True,
        regressed_at=now,
        reopened_at=now,
        resolution="",
        resolution_note="",
        updated_at=now,
    )
    bug.status, bug.regressed, bug.regressed_at, bug.reopened_at = BugStatus.NEW, True, now, now
    bug.resolution, bug.resolution_note = "", ""
    BugEvent.objects.bulk_create(
        [
            BugEvent(
                bug=bug,
                actor_id=actor_id,
                field="status",
                from_value=previous_status,
                to_value=BugStatus.NEW,
                note=why,
                created_at=now,
            ),
            BugEvent(
                bug=bug,
                actor_id=actor_id,
                field="regressed",
                from_value="false",
                to_value="true",
                note=why,
                created_at=now,
            ),
        ]
    )


def bug_file(
    *,
    project_id: int,
    fingerprint: str,
    draft: BugDraft,
    failures: list[FailureData],
    now: datetime | None = None,
    actor=None,
    count_report: bool = True,
) -> FilingResult:
    """File one report (with its failures) into the bug of `fingerprint`. Call inside a transaction.

    Occurrences added: the number of failures, or 1 for a report without failures when
    `count_report` (the automatic filer counts failures only). They are recorded at the failures'
    own times (one occurrence row per UTC day among them; a report without failures: `now`), and
    first_seen / last_seen widen to the earliest / latest of those times. Announces bug.created, or
    bug.regressed and bug.occurrences (bugqueue.services.announce), after commit."""
    now = now or timezone.now()
    actor_id = getattr(actor, "pk", None)
    n = len(failures) if failures else (1 if count_report else 0)
    times = [f.occurred_at(now) for f in failures]
    seen = (min(times), max(times)) if times else (now, now)
    bug, created, regressed = _locate(
        project_id=project_id,
        fingerprint=fingerprint,
        draft=draft,
        failures=failures,
        now=now,
        actor_id=actor_id,
        initial=n,
        seen=seen if n else None,
    )
    if failures:
        FailureExample.objects.bulk_create(
            [
                FailureExample(
                    bug_id=bug.pk,
                    project_id=project_id,
                    item_id=f.item_id,
                    external_id=f.external_id,
                    payload=f.payload,
                    model_version=f.model_version,
                    predicted_label=f.predicted_label,
                    expected_label=f.expected_label,
                    predicted_at=f.predicted_at,
                    occurred_at=at,
                    source=f.source,
                    label_change_seq=f.label_change_seq,
                    created_at=now,
                )
                for f, at in zip(failures, times, strict=True)
            ],
            batch_size=1000,
        )
    if n:
        if not created:  # a new bug was inserted with its first occurrences already counted
            Bug.objects.filter(pk=bug.pk).update(
                occurrences=F("occurrences") + n,
                first_seen=Least(F("first_seen"), seen[0]),
                last_seen=Greatest(F("last_seen"), seen[1]),
                updated_at=now,
            )
            bug.occurrences += n  # the row is locked by this transaction: the value read is current
            bug.first_seen, bug.last_seen = min(bug.first_seen, seen[0]), max(bug.last_seen, seen[1])
        BugOccurrence.objects.bulk_create(
            occurrence_rows(bug_id=bug.pk, times=times)
            if times
            else [BugOccurrence(bug_id=bug.pk, count=n, seen_at=now)]
        )
        if bug.snoozed:
            snooze_check_filed(bug=bug, now=now)
    announce_bug_filed(bug=bug, created=created, regressed=regressed, added=0 if created else n)
    return FilingResult(
        bug=bug, created=created, regressed=regressed, occurrences=bug.occurrences, recorded=len(failures)
    )


def occurrence_rows(*, bug_id: int, times) -> list[BugOccurrence]:
    """Occurrence rows for failures that happened at `times`: one per UTC day, at its earliest time."""
    days = defaultdict(list)
    for at in times:
        days[at.astimezone(UTC).date()].append(at)
    return [BugOccurrence(bug_id=bug_id, count=len(ats), seen_at=min(ats)) for _, ats in sorted(days.items())]
