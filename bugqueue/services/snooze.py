"""Snooze (Sentry's "ignore"): an open bug leaves the default stream until a date, until N more
occurrences, or until its new failures touch N more distinct items (any condition set; none: until
someone unsnoozes it). The filing path checks the occurrence and item conditions as it files
(`snooze_check_filed`, only for a snoozed bug); a periodic task returns bugs whose date has come
(`bugs_unsnooze_due`). Returning writes history and announces bug.unsnoozed after commit.

Every function works on a set of bugs in a constant number of queries, so the bulk action and the
single-bug endpoint share it.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from bugqueue.models import OPEN_STATUSES, Bug, BugEvent, FailureExample
from bugqueue.services.announce import announce_unsnoozed
from common.errors import Conflict, ValidationFailed

MAX_COUNT = 1_000_000_000
SNOOZE_CLEARED = {
    "snoozed": False,
    "snoozed_at": None,
    "snoozed_by": None,
    "snooze_until": None,
    "snooze_until_occurrences": None,
    "snooze_items": None,
    "snooze_after_failure_id": None,
}


@dataclass(frozen=True)
class SnoozeSpec:
    """A validated snooze condition (all None: until unsnoozed by hand)."""

    until: datetime | None = None
    occurrences: int | None = None
    items: int | None = None

    def describe(self) -> str:
        parts = []
        if self.until:
            parts.append(f"until {self.until.isoformat(timespec='minutes')}")
        if self.occurrences:
            parts.append(f"until {self.occurrences} more occurrence{'s' if self.occurrences != 1 else ''}")
        if self.items:
            parts.append(f"until {self.items} more item{'s' if self.items != 1 else ''}")
        return " or ".join(parts) or "until unsnoozed"


def snooze_spec(*, until=None, occurrences=None, items=None, now=None) -> SnoozeSpec:
    """Validate a snooze condition (400 for a date in the past or a count below 1)."""
    now = now or timezone.now()
    errors = {}
    if until is not None:
        if not isinstance(until, datetime) or until.tzinfo is None:
            errors["until"] = ["Must be a date and time with a timezone."]
        elif until <= now:
            errors["until"] = ["Must be in the future."]
    for name, value in (("occurrences", occurrences), ("items", items)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT):
            errors[name] = [f"Must be a whole number from 1 to {MAX_COUNT:,}."]
    if errors:
        name, messages = next(iter(errors.items()))
        raise ValidationFailed(f"{name}: {messages[0]}", fields=errors)
    return SnoozeSpec(until=until, occurrences=occurrences, items=items)


def bugs_snooze(*, bugs: list[Bug], actor, spec: SnoozeSpec, note: str = "", now=None) -> list[Bug]:
    """Snooze the given locked, open bugs (a snoozed one gets the new condition). One UPDATE and one
    history insert. Returns the bugs changed. Call inside a transaction."""
    now = now or timezone.now()
    if not bugs:
        return []
    newest_failure = Subquery(
        FailureExample.objects.filter(bug_id=OuterRef("pk")).values("bug_id").annotate(m=Max("id")).values("m")[:1]
    )
    Bug.objects.filter(pk__in=[b.pk for b in bugs]).update(
        snoozed=True,
        snoozed_at=now,
        snoozed_by=actor,
        snooze_until=spec.until,
        snooze_until_occurrences=F("occurrences") + spec.occurrences if spec.occurrences else None,
        snooze_items=spec.items,
        snooze_after_failure_id=Coalesce(newest_failure, 0) if spec.items else None,
        updated_at=now,
    )
    why = spec.describe()
    BugEvent.objects.bulk_create(
        [
            BugEvent(
                bug=b,
                actor=actor,
                field="snoozed",
                from_value="true" if b.snoozed else "false",
                to_value=why,
                note=note,
                created_at=now,
            )
            for b in bugs
        ]
    )
    for b in bugs:
        b.snoozed = True
    return bugs


@transaction.atomic
def bug_snooze(*, bug: Bug, actor, until=None, occurrences=None, items=None, note: str = "") -> Bug:
    """Snooze one open bug (409 for a closed one)."""
    spec = snooze_spec(until=until, occurrences=occurrences, items=items)
    bug = Bug.objects.select_for_update().get(pk=bug.pk)
    if bug.status not in OPEN_STATUSES:
        raise Conflict(
            f"A {bug.status} bug cannot be snoozed; only open bugs are.",
            code="invalid_transition",
            fields={"status": ["Only open bugs can be snoozed."]},
        )
    bugs_snooze(bugs=[bug], actor=actor, spec=spec, note=note)
    bug.refresh_from_db()
    return bug


def bugs_unsnooze(*, bugs: list[Bug], actor, reason: str, note: str = "", now=None, tags=None) -> list[Bug]:
    """Return the given locked, snoozed bugs to the stream: one UPDATE, one history insert, one
    bug.unsnoozed event each (after commit). `reason`: manual, date, occurrences, items or closed.
    `tags`: {bug_id: [slugs]} when the caller has them (else read per bug). Call inside a transaction."""
    now = now or timezone.now()
    bugs = [b for b in bugs if b.snoozed]
    if not bugs:
        return []
    Bug.objects.filter(pk__in=[b.pk for b in bugs]).update(**SNOOZE_CLEARED, updated_at=now)
    text = {
        "manual": "Unsnoozed.",
        "date": "Snooze ended: its date came.",
        "occurrences": "Snooze ended: the bug occurred the given number of times more.",
        "items": "Snooze ended: the bug affected the given number of items more.",
        "closed": "Snooze cleared: the bug was closed.",
    }[reason]
    BugEvent.objects.bulk_create(
        [
            BugEvent(
                bug=b,
                actor=actor,
                field="snoozed",
                from_value="true",
                to_value="false",
                note=note or text,
                created_at=now,
            )
            for b in bugs
        ]
    )
    for b in bugs:
        for name, value in SNOOZE_CLEARED.items():
            setattr(b, name, value)
        if reason != "closed":
            announce_unsnoozed(bug=b, reason=reason, actor=actor, tags=None if tags is None else tags.get(b.pk, []))
    return bugs


@transaction.atomic
def bug_unsnooze(*, bug: Bug, actor, note: str = "") -> Bug:
    """Return a snoozed bug to the stream by hand (a bug that is not snoozed: no change)."""
    bug = Bug.objects.select_for_update().get(pk=bug.pk)
    bugs_unsnooze(bugs=[bug], actor=actor, reason="manual", note=note)
    return bug


def snooze_check_filed(*, bug: Bug, now) -> bool:
    """In the filing path, for a locked bug whose counters are current: unsnooze it when a condition
    is met. No query unless the bug is snoozed; then at most one count and the unsnooze writes."""
    if not bug.snoozed:
        return False
    reason = None
    if bug.snooze_until is not None and bug.snooze_until <= now:
        reason = "date"
    elif bug.snooze_until_occurrences is not None and bug.occurrences >= bug.snooze_until_occurrences:
        reason = "occurrences"
    elif bug.snooze_items:
        touched = (
            FailureExample.objects.filter(bug_id=bug.pk, id__gt=bug.snooze_after_failure_id or 0, item_id__isnull=False)
            .values("item_id")
            .distinct()
            .count()
        )
        if touched >= bug.snooze_items:
            reason = "items"
    if reason is None:
        return False
    bugs_unsnooze(bugs=[bug], actor=None, reason=reason, now=now)
    return True


@transaction.atomic
def bugs_unsnooze_due(*, now=None, limit: int = 5000) -> int:
    """The periodic task's pass: return every bug whose snooze date has come. Returns how many."""
    now = now or timezone.now()
    bugs = list(
        Bug.objects.select_for_update(skip_locked=True)
        .filter(snoozed=True, snooze_until__isnull=False, snooze_until__lte=now)
        .order_by("pk")[:limit]
    )
    return len(bugs_unsnooze(bugs=bugs, actor=None, reason="date", now=now))
