"""Merging bugs (Sentry's merge) and undoing it.

`bugs_merge` moves the failures and occurrence rows of each source bug into the target, adds the
source's tags and counts there, and closes the source as a duplicate of the target; a BugMerge row
records what moved. Every moved row keeps the bug it was filed into (`origin_bug`), so
`bug_unmerge` moves back exactly those rows, including those of bugs merged earlier into the source;
reports filed into the target after the merge stay there. Comments stay on the bug they were written
on (its page links to the target). Later reports of a source's fingerprint reach the target through
`duplicate_of` (bugqueue.services.grouping._locate), under the target's row lock, so the one open bug
per fingerprint invariant holds without a check-then-insert.

Rows are locked in primary-key order; history rows are written on both sides.
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Max, Min, Sum, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from bugqueue.models import (
    CLOSED_STATUSES,
    Bug,
    BugEvent,
    BugMerge,
    BugOccurrence,
    BugStatus,
    FailureExample,
    Resolution,
)
from bugqueue.services.announce import announce_status_changed
from bugqueue.services.snooze import bugs_unsnooze
from common.errors import Conflict, NotFound, ValidationFailed

MAX_MERGE_SOURCES = 100


@dataclass
class MergeResult:
    target: Bug
    merged: list[int]


def _event(bug_id, actor, field, from_value, to_value, note, now):
    return BugEvent(
        bug_id=bug_id,
        actor=actor,
        field=field,
        from_value=str(from_value or ""),
        to_value=str(to_value or ""),
        note=note,
        created_at=now,
    )


def _source_ids(bugs) -> list[int]:
    if not isinstance(bugs, list | tuple) or not bugs:
        raise ValidationFailed("bugs must be a non-empty list of bug ids.", fields={"bugs": ["A non-empty list."]})
    if len(bugs) > MAX_MERGE_SOURCES:
        raise ValidationFailed(
            f"At most {MAX_MERGE_SOURCES} bugs are merged at once.", fields={"bugs": ["Too many bugs."]}
        )
    if not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in bugs):
        raise ValidationFailed("bugs must be bug ids.", fields={"bugs": ["Each must be a positive integer."]})
    return sorted(set(bugs))


def _closure(bug_id: int) -> set[int]:
    """The bug and every bug merged into it (in force), recursively: whose rows an unmerge moves."""
    found, frontier = {bug_id}, [bug_id]
    while frontier:
        sources = set(
            BugMerge.objects.filter(target_id__in=frontier, unmerged_at__isnull=True).values_list(
                "source_id", flat=True
            )
        )
        frontier = list(sources - found)
        found |= sources
    return found


@transaction.atomic
def bugs_merge(*, target: Bug, bugs, actor) -> MergeResult:
    """Merge the bugs `bugs` (ids) into `target`: same project only (400), not into itself nor into a
    closed bug (409 `merge_into_self`, `merge_into_closed`), not a bug already a duplicate (409
    `already_duplicate`). Validated before the first write: a refused merge changes nothing."""
    ids = _source_ids(bugs)
    if target.pk in ids:
        raise Conflict("A bug cannot be merged into itself.", code="merge_into_self", fields={"bugs": ["Holds into."]})
    locked = {b.pk: b for b in Bug.objects.select_for_update().filter(pk__in=[target.pk, *ids]).order_by("pk")}
    target = locked.get(target.pk)
    if target is None:
        raise NotFound("Bug not found.")
    sources = [locked[i] for i in ids if i in locked and locked[i].project_id == target.project_id]
    foreign = [i for i in ids if i not in {s.pk for s in sources}]
    if foreign:
        raise ValidationFailed(
            f"Only bugs of the same project merge: no bug {', '.join(f'#{i}' for i in foreign)} in this project.",
            fields={"bugs": [f"#{i} is not a bug of this project." for i in foreign]},
        )
    if target.status in CLOSED_STATUSES:
        raise Conflict(
            f"Bug #{target.pk} is {target.status}: reopen it before merging bugs into it.",
            code="merge_into_closed",
            fields={"into": ["A closed bug."]},
        )
    duplicates = [s.pk for s in sources if s.status == BugStatus.DUPLICATE]
    if duplicates:
        raise Conflict(
            f"Bug {', '.join(f'#{i}' for i in duplicates)} is already a duplicate; unmerge or reopen it first.",
            code="already_duplicate",
            fields={"bugs": [f"#{i} is a duplicate." for i in duplicates]},
        )

    now = timezone.now()
    snoozed = [s for s in sources if s.snoozed]
    if snoozed:  # a merged bug is closed, and closing a bug ends its snooze
        bugs_unsnooze(bugs=snoozed, actor=actor, reason="closed", now=now)
    events = []
    target_tags = set(target.tags.values_list("pk", flat=True))
    first_seen, last_seen = target.first_seen, target.last_seen
    occurrences_before = target.occurrences
    for source in sources:
        moved_failures = FailureExample.objects.filter(bug_id=source.pk).update(
            bug_id=target.pk, origin_bug_id=Coalesce(F("origin_bug_id"), source.pk)
        )
        rows = BugOccurrence.objects.filter(bug_id=source.pk)
        moved_occurrences = rows.aggregate(n=Coalesce(Sum("count"), 0))["n"]
        rows.update(bug_id=target.pk, origin_bug_id=Coalesce(F("origin_bug_id"), source.pk))
        added_tags = sorted(set(source.tags.values_list("pk", flat=True)) - target_tags)
        if added_tags:
            target.tags.add(*added_tags)
            target_tags |= set(added_tags)
        BugMerge.objects.create(
            project_id=target.project_id,
            target=target,
            source=source,
            actor=actor,
            failures=moved_failures,
            occurrences=moved_occurrences,
            tags_added=added_tags,
            source_before={
                "status": source.status,
                "resolution": source.resolution,
                "resolution_note": source.resolution_note,
                "resolved_at": source.resolved_at.isoformat() if source.resolved_at else None,
                "triaged_at": source.triaged_at.isoformat() if source.triaged_at else None,
            },
            target_first_seen=first_seen,
            target_last_seen=last_seen,
            created_at=now,
        )
        first_seen, last_seen = min(first_seen, source.first_seen), max(last_seen, source.last_seen)
        what = f"{moved_failures} failure{'s' if moved_failures != 1 else ''}, {moved_occurrences} occurrence" + (
            "s" if moved_occurrences != 1 else ""
        )
        events += [
            _event(target.pk, actor, "merged", "", f"#{source.pk}", f"Merged #{source.pk} into this bug: {what}.", now),
            _event(source.pk, actor, "status", source.status, BugStatus.DUPLICATE, f"Merged into #{target.pk}.", now),
            _event(source.pk, actor, "duplicate_of", source.duplicate_of_id, target.pk, f"Merged: {what} moved.", now),
        ]
        Bug.objects.filter(pk=source.pk).update(
            status=BugStatus.DUPLICATE,
            resolution=Resolution.DUPLICATE,
            resolution_note=f"Merged into #{target.pk}.",
            resolved_at=now,
            triaged_at=Coalesce(F("triaged_at"), now),
            duplicate_of_id=target.pk,
            occurrences=F("occurrences") - min(moved_occurrences, source.occurrences),
            updated_at=now,
        )
        old_status = source.status
        source.status = BugStatus.DUPLICATE
        announce_status_changed(bug=source, old=old_status, new=BugStatus.DUPLICATE, actor=actor)
        target.occurrences += moved_occurrences
    Bug.objects.filter(pk=target.pk).update(
        occurrences=F("occurrences") + (target.occurrences - occurrences_before),
        first_seen=first_seen,
        last_seen=last_seen,
        updated_at=now,
    )
    BugEvent.objects.bulk_create(events)
    target.refresh_from_db()
    return MergeResult(target=target, merged=[s.pk for s in sources])


@transaction.atomic
def bug_unmerge(*, bug: Bug, actor) -> Bug:
    """Undo the merge of `bug` (a merged source): its own failures and occurrence rows (and those of
    bugs merged into it) go back, the tags it brought leave the target, and it gets back the status
    it had. 409 `not_merged` when it is not merged, `target_merged` when its target was itself
    merged since (unmerge that first), `fingerprint_open` when another open bug took its fingerprint."""
    record = BugMerge.objects.filter(source_id=bug.pk, unmerged_at__isnull=True).first()
    if record is None:
        raise Conflict(f"Bug #{bug.pk} is not merged into another bug.", code="not_merged")
    locked = {b.pk: b for b in Bug.objects.select_for_update().filter(pk__in=[bug.pk, record.target_id]).order_by("pk")}
    source, target = locked[bug.pk], locked[record.target_id]
    record = BugMerge.objects.select_for_update().get(pk=record.pk)
    if record.unmerged_at is not None:
        raise Conflict(f"Bug #{bug.pk} was unmerged meanwhile.", code="not_merged")
    if BugMerge.objects.filter(source_id=target.pk, unmerged_at__isnull=True).exists():
        raise Conflict(
            f"Bug #{target.pk} was merged into another bug since; unmerge #{target.pk} first.",
            code="target_merged",
        )
    now = timezone.now()
    origins = _closure(source.pk)
    back_to_origin = Case(When(origin_bug_id=source.pk, then=None), default=F("origin_bug_id"))
    failures = FailureExample.objects.filter(bug_id=target.pk, origin_bug_id__in=origins).update(
        bug_id=source.pk, origin_bug_id=back_to_origin
    )
    rows = BugOccurrence.objects.filter(bug_id=target.pk, origin_bug_id__in=origins)
    occurrences = rows.aggregate(n=Coalesce(Sum("count"), 0))["n"]
    rows.update(bug_id=source.pk, origin_bug_id=back_to_origin)
    if record.tags_added:
        target.tags.remove(*record.tags_added)
    before = record.source_before
    restored_status = before.get("status") or BugStatus.NEW
    try:
        with transaction.atomic():
            Bug.objects.filter(pk=source.pk).update(
                status=restored_status,
                resolution=before.get("resolution") or "",
                resolution_note=before.get("resolution_note") or "",
                resolved_at=before.get("resolved_at"),
                triaged_at=before.get("triaged_at"),
                duplicate_of_id=None,
                occurrences=F("occurrences") + occurrences,
                updated_at=now,
            )
    except IntegrityError:
        other = (
            Bug.objects.filter(project_id=source.project_id, fingerprint=source.fingerprint)
            .exclude(status__in=CLOSED_STATUSES)
            .values_list("pk", flat=True)
            .first()
        )
        raise Conflict(
            f"Bug #{other} with the same fingerprint is open: #{source.pk} cannot reopen beside it.",
            code="fingerprint_open",
        )
    remaining = BugOccurrence.objects.filter(bug_id=target.pk).aggregate(last=Max("seen_at"), first=Min("seen_at"))
    last_seen = max(filter(None, [record.target_last_seen, remaining["last"]]))
    Bug.objects.filter(pk=target.pk).update(
        occurrences=F("occurrences") - min(occurrences, target.occurrences),
        first_seen=record.target_first_seen,
        last_seen=last_seen,
        updated_at=now,
    )
    record.unmerged_at, record.unmerged_by = now, actor
    record.save(update_fields=["unmerged_at", "unmerged_by"])
    what = (
        f"{failures} failure{'s' if failures != 1 else ''}, {occurrences} occurrence{'s' if occurrences != 1 else ''}"
    )
    BugEvent.objects.bulk_create(
        [
            _event(
                target.pk, actor, "unmerged", f"#{source.pk}", "", f"Unmerged #{source.pk}: {what} moved back.", now
            ),
            _event(
                source.pk, actor, "status", BugStatus.DUPLICATE, restored_status, f"Unmerged from #{target.pk}.", now
            ),
            _event(source.pk, actor, "duplicate_of", target.pk, "", f"Unmerged: {what} moved back.", now),
        ]
    )
    source.refresh_from_db()
    announce_status_changed(bug=source, old=BugStatus.DUPLICATE, new=source.status, actor=actor)
    return source
