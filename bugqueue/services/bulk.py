"""Bulk actions on the bug stream: assign, set priority, add/remove tags, resolve, snooze, unsnooze
many bugs at once. One transaction, a constant number of queries whatever the number of bugs (the
bugs are locked in primary-key order, each change is one UPDATE, the history one bulk insert).

Validation happens before the first write. A bug the action does not apply to (resolving a bug
closed another way, snoozing a closed bug) is skipped and named in the summary; the rest change.
Which bugs a user may act on is decided by bugqueue.selectors.bulk.
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from bugqueue.models import (
    OPEN_STATUSES,
    RESOLUTION_STATUS,
    Bug,
    BugDatasetFlow,
    BugEvent,
    FailureExample,
    Priority,
    Resolution,
)
from bugqueue.selectors.bugs import tags_resolve
from bugqueue.services.announce import announce_status_changed
from bugqueue.services.snooze import SNOOZE_CLEARED, bugs_snooze, bugs_unsnooze, snooze_spec
from common.errors import ValidationFailed
from common.timestamps import parse_timestamp
from labeling.models import Membership

User = get_user_model()

MAX_BULK = 10_000
ACTIONS = ("assign", "priority", "tag", "resolve", "snooze", "unsnooze")
BugTag = Bug.tags.through


@dataclass
class BulkResult:
    action: str
    matched: int = 0
    changed: list = field(default_factory=list)  # ids
    skipped: list = field(default_factory=list)  # [{"id", "reason"}]

    @property
    def unchanged(self) -> int:
        return self.matched - len(self.changed) - len(self.skipped)


def _bad(name: str, message: str):
    raise ValidationFailed(f"{name}: {message}", fields={name: [message]})


def _event(bug_id, actor, name, old, new, note, now):
    return BugEvent(
        bug_id=bug_id,
        actor=actor,
        field=name,
        from_value="" if old is None else str(old),
        to_value="" if new is None else str(new),
        note=note,
        created_at=now,
    )


def _tags_of(bug_ids) -> dict:
    out = {i: [] for i in bug_ids}
    for bug_id, slug in BugTag.objects.filter(bug_id__in=bug_ids).values_list("bug_id", "tag__slug"):
        out[bug_id].append(slug)
    return {k: sorted(v) for k, v in out.items()}


def _validate(action: str, value, project_ids) -> dict:
    """The action's arguments, checked before anything is written."""
    if action not in ACTIONS:
        _bad("action", f"Must be one of {', '.join(ACTIONS)}.")
    if action == "assign":
        if value in (None, ""):
            return {"user": None}
        if not isinstance(value, str):
            _bad("value", "A member's username, or null to unassign.")
        user = User.objects.filter(username=value).first()
        members = (
            set(Membership.objects.filter(user=user, project_id__in=project_ids).values_list("project_id", flat=True))
            if user is not None
            else set()
        )
        if user is None or not (user.is_staff or members >= set(project_ids)):
            _bad("value", f"{value!r} is not a member of every project of these bugs.")
        return {"user": user}
    if action == "priority":
        if value not in Priority.values:
            _bad("value", f"Must be one of {', '.join(Priority.values)}.")
        return {"priority": value}
    if action == "tag":
        if (
            not isinstance(value, dict)
            or set(value) - {"add", "remove"}
            or not (value.get("add") or value.get("remove"))
        ):
            _bad("value", 'An object {"add": [slugs], "remove": [slugs]} with at least one slug.')
        add = {t.pk: t.slug for t in tags_resolve(value.get("add") or [])}
        remove = {t.pk: t.slug for t in tags_resolve(value.get("remove") or [])}
        if set(add) & set(remove):
            _bad("value", "A tag cannot be both added and removed.")
        return {"add": add, "remove": remove}
    if action == "resolve":
        value = {"resolution": value} if isinstance(value, str) else value
        if not isinstance(value, dict) or set(value) - {"resolution", "note"}:
            _bad("value", 'A resolution ("fixed" or "wont_fix") or {"resolution": ..., "note": ...}.')
        resolution, note = value.get("resolution"), value.get("note") or ""
        if resolution == Resolution.DUPLICATE:
            _bad("value", "Duplicates are merged: POST /api/bugs/merge.")
        if resolution not in (Resolution.FIXED, Resolution.WONT_FIX):
            _bad("value", "resolution must be fixed or wont_fix.")
        if not isinstance(note, str) or len(note) > 20_000:
            _bad("value", "note must be a string of at most 20,000 characters.")
        return {"resolution": resolution, "note": note.strip()}
    if action == "snooze":
        value = value or {}
        if not isinstance(value, dict) or set(value) - {"until", "occurrences", "items"}:
            _bad("value", 'An object with any of "until" (a date), "occurrences", "items".')
        until = value.get("until")
        if until is not None:
            try:
                until = parse_timestamp(until, field="until")
            except ValueError as exc:
                _bad("value", str(exc))
        return {"spec": snooze_spec(until=until, occurrences=value.get("occurrences"), items=value.get("items"))}
    return {}


@transaction.atomic
def bugs_bulk_apply(*, actor, bug_ids: list[int], action: str, value=None, note: str = "") -> BulkResult:
    """Apply one action to the given bugs (ids the caller may act on: bugqueue.selectors.bulk).
    Constant number of queries; history rows in one insert; events after commit."""
    if len(bug_ids) > MAX_BULK:
        _bad("bugs", f"At most {MAX_BULK:,} bugs at once.")
    if not isinstance(note, str) or len(note) > 20_000:
        _bad("note", "At most 20,000 characters.")
    now = timezone.now()
    bugs = list(
        Bug.objects.select_for_update(of=("self",)).select_related("assignee").filter(pk__in=bug_ids).order_by("pk")
    )
    args = _validate(action, value, sorted({b.project_id for b in bugs}))
    result = BulkResult(action=action, matched=len(bugs))
    events = []
    if action == "assign":
        user = args["user"]
        target = getattr(user, "pk", None)
        changing = [b for b in bugs if b.assignee_id != target]
        Bug.objects.filter(pk__in=[b.pk for b in changing]).update(assignee=user, updated_at=now)
        events = [
            _event(
                b.pk, actor, "assignee", getattr(b.assignee, "username", ""), getattr(user, "username", ""), note, now
            )
            for b in changing
        ]
    elif action == "priority":
        changing = [b for b in bugs if b.priority != args["priority"]]
        Bug.objects.filter(pk__in=[b.pk for b in changing]).update(priority=args["priority"], updated_at=now)
        events = [_event(b.pk, actor, "priority", b.priority, args["priority"], note, now) for b in changing]
    elif action == "tag":
        current = _tags_of([b.pk for b in bugs])
        add, remove = args["add"], args["remove"]
        changing = []
        for b in bugs:
            wanted = sorted((set(current[b.pk]) | set(add.values())) - set(remove.values()))
            if wanted != current[b.pk]:
                changing.append(b)
                events.append(_event(b.pk, actor, "tags", ",".join(current[b.pk]), ",".join(wanted), note, now))
        ids = [b.pk for b in changing]
        if add:
            BugTag.objects.bulk_create(
                [BugTag(bug_id=i, tag_id=t) for i in ids for t in add], ignore_conflicts=True, batch_size=5000
            )
        if remove:
            BugTag.objects.filter(bug_id__in=ids, tag_id__in=list(remove)).delete()
        Bug.objects.filter(pk__in=ids).update(updated_at=now)
    elif action == "resolve":
        changing, events = _resolve(bugs, actor=actor, result=result, now=now, **args)
    elif action == "snooze":
        changing = [b for b in bugs if b.status in OPEN_STATUSES]
        result.skipped += [
            {"id": b.pk, "reason": f"{b.status}: only open bugs are snoozed"} for b in bugs if b not in changing
        ]
        bugs_snooze(bugs=changing, actor=actor, spec=args["spec"], note=note, now=now)
    else:  # unsnooze
        changing = bugs_unsnooze(
            bugs=bugs,
            actor=actor,
            reason="manual",
            note=note,
            now=now,
            tags=_tags_of([b.pk for b in bugs if b.snoozed]),
        )
    if events:
        BugEvent.objects.bulk_create(events, batch_size=5000)
    result.changed = [b.pk for b in changing]
    return result


def _resolve(bugs, *, actor, result, now, resolution, note):
    """Close the open bugs the way bug_resolve does (same fields, history and events; a fixed bug
    hands its failures to datasets through a BugDatasetFlow run in Celery)."""
    status = RESOLUTION_STATUS[resolution]
    changing = []
    for b in bugs:
        if b.status in OPEN_STATUSES:
            changing.append(b)
        elif b.status != status:
            result.skipped.append({"id": b.pk, "reason": f"{b.status}: reopen it first"})
    if not changing:
        return [], []
    ids = [b.pk for b in changing]
    newest = Subquery(
        FailureExample.objects.filter(bug_id=OuterRef("pk"))
        .exclude(model_version="")
        .order_by(F("predicted_at").desc(nulls_last=True), "-id")
        .values("model_version")[:1]
    )
    Bug.objects.filter(pk__in=ids).update(
        status=status,
        resolution=resolution,
        resolution_note=note,
        resolved_at=now,
        resolved_model_version=Coalesce(newest, F("model_version")),
        duplicate_of=None,
        triaged_at=Coalesce(F("triaged_at"), now),
        **SNOOZE_CLEARED,
        updated_at=now,
    )
    events = []
    for b in changing:
        events.append(_event(b.pk, actor, "status", b.status, status, note, now))
        if b.snoozed:
            events.append(_event(b.pk, actor, "snoozed", "true", "false", "Snooze cleared: the bug was closed.", now))
    tags = _tags_of(ids)
    for b in changing:
        old = b.status
        b.status = status
        announce_status_changed(bug=b, old=old, new=status, actor=actor, tags=tags[b.pk])
    if resolution == Resolution.FIXED:
        from bugqueue.tasks import bug_datasets_flow_task
        from labeling.services.work import enqueue_on_commit

        flows = BugDatasetFlow.objects.bulk_create(
            [BugDatasetFlow(bug_id=i, datasets=[], mine_similar=0, created_by=actor) for i in ids]
        )
        for flow in flows:
            enqueue_on_commit(bug_datasets_flow_task, flow.pk)
    return changing, events
