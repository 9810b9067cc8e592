"""Bugs: update (allowed transitions), resolve; per-project settings (reporting: services/report.py,
comments: services/comments.py).

Every change writes a BugEvent (who, when, field, from, to, why) in the same transaction.
Validation happens before the first write, so bad input writes nothing. The allowed status
transitions are TRANSITIONS (the rest: 409 `invalid_transition`; the current status is a no-op).
A status change announces bug.status_changed after commit (bugqueue.services.announce).
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from bugqueue.models import (
    CLOSED_STATUSES,
    RESOLUTION_STATUS,
    Bug,
    BugEvent,
    BugStatus,
    FailureExample,
    Priority,
    Resolution,
)
from bugqueue.selectors.bugs import tags_resolve
from bugqueue.services.announce import announce_status_changed
from bugqueue.services.snooze import bugs_unsnooze
from common.errors import Conflict, ValidationFailed
from labeling.models import Membership

User = get_user_model()

MAX_COMMENT_CHARS = 20_000

TRANSITIONS = {
    BugStatus.NEW: {BugStatus.TRIAGED, BugStatus.IN_PROGRESS, *CLOSED_STATUSES},
    BugStatus.TRIAGED: {BugStatus.IN_PROGRESS, *CLOSED_STATUSES},
    BugStatus.IN_PROGRESS: {BugStatus.TRIAGED, *CLOSED_STATUSES},
    BugStatus.RESOLVED: {BugStatus.NEW},
    BugStatus.WONT_FIX: {BugStatus.NEW},
    BugStatus.DUPLICATE: {BugStatus.NEW},
}
STATUS_RESOLUTION = {status: resolution for resolution, status in RESOLUTION_STATUS.items()}


class _Unset:
    def __repr__(self):
        return "UNSET"


UNSET = _Unset()


# --- update, resolve ------------------------------------------------------------------------
@dataclass
class ResolveResult:
    bug: Bug
    changed: bool
    flow: object = None  # the BugDatasetFlow started for a fixed bug (see bugqueue.services.datasets)


def _lock(bug_id: int) -> Bug:
    return Bug.objects.select_for_update().get(pk=bug_id)


def _event(bug, actor, field, from_value, to_value, note="", now=None):
    return BugEvent(
        bug=bug,
        actor=actor,
        field=field,
        from_value="" if from_value is None else str(from_value),
        to_value="" if to_value is None else str(to_value),
        note=note,
        created_at=now or timezone.now(),
    )


def _refuse_transition(current: str, target: str):
    allowed = sorted(TRANSITIONS[current])
    raise Conflict(
        f"A {current} bug cannot become {target}; it can become {', '.join(allowed)}"
        + (" (reopen it first)." if current in CLOSED_STATUSES else "."),
        code="invalid_transition",
        fields={"status": [f"{current} -> {target} is not allowed."]},
    )


def _duplicate_target(*, bug: Bug, duplicate_of) -> Bug:
    if duplicate_of in (None, ""):
        raise ValidationFailed(
            "A duplicate needs duplicate_of (the id of the bug it duplicates).",
            fields={"duplicate_of": ["This field is required for a duplicate."]},
        )
    try:
        target_id = int(duplicate_of)
    except (TypeError, ValueError):
        raise ValidationFailed("duplicate_of must be a bug id.", fields={"duplicate_of": ["Must be an integer."]})
    target = Bug.objects.filter(pk=target_id, project_id=bug.project_id).first()
    seen = {bug.pk}
    while (
        target is not None and target.status == BugStatus.DUPLICATE and target.duplicate_of_id and target.pk not in seen
    ):
        seen.add(target.pk)  # point at the root, so a chain never forms
        target = Bug.objects.filter(pk=target.duplicate_of_id, project_id=bug.project_id).first()
    if target is None:
        raise ValidationFailed(f"No bug #{target_id} in this project.", fields={"duplicate_of": ["Unknown bug."]})
    if target.pk == bug.pk:
        raise ValidationFailed("A bug cannot duplicate itself.", fields={"duplicate_of": ["Points back to this bug."]})
    return target


def _close(*, bug: Bug, actor, resolution: str, note: str, duplicate_of, now) -> list[BugEvent]:
    """Close a locked bug (validated before any write). Returns the history rows to write."""
    status = RESOLUTION_STATUS[resolution]
    target = _duplicate_target(bug=bug, duplicate_of=duplicate_of) if resolution == Resolution.DUPLICATE else None
    newest = (
        FailureExample.objects.filter(bug_id=bug.pk)
        .exclude(model_version="")
        .order_by(F("predicted_at").desc(nulls_last=True), "-id")
        .values_list("model_version", flat=True)
        .first()
    )
    events = [_event(bug, actor, "status", bug.status, status, note, now)]
    if bug.snoozed:
        bugs_unsnooze(bugs=[bug], actor=actor, reason="closed", now=now)
    if target is not None:
        events.append(_event(bug, actor, "duplicate_of", bug.duplicate_of_id, target.pk, note, now))
    if bug.triaged_at is None:
        bug.triaged_at = now
    bug.status, bug.resolution, bug.resolution_note, bug.resolved_at = status, resolution, note, now
    bug.resolved_model_version = newest or bug.model_version
    bug.duplicate_of = target
    bug.save(
        update_fields=[
            "status",
            "resolution",
            "resolution_note",
            "resolved_at",
            "resolved_model_version",
            "duplicate_of",
            "triaged_at",
            "updated_at",
        ]
    )
    return events


def _reopen(*, bug: Bug, actor, note: str, now) -> list[BugEvent]:
    events = [_event(bug, actor, "status", bug.status, BugStatus.NEW, note or "Reopened.", now)]
    bug.status, bug.reopened_at = BugStatus.NEW, now
    bug.resolution, bug.resolution_note, bug.duplicate_of = "", "", None
    try:
        with transaction.atomic():
            bug.save(
                update_fields=["status", "reopened_at", "resolution", "resolution_note", "duplicate_of", "updated_at"]
            )
    except IntegrityError:
        other = (
            Bug.objects.filter(project_id=bug.project_id, fingerprint=bug.fingerprint)
            .exclude(status__in=CLOSED_STATUSES)
            .values_list("pk", flat=True)
            .first()
        )
        raise Conflict(
            f"Bug #{other} with the same fingerprint is open; mark this one a duplicate of it instead.",
            code="fingerprint_open",
            fields={"status": ["Another open bug has this fingerprint."]},
        )
    return events


@transaction.atomic
def bug_resolve(
    *, bug: Bug, actor, resolution: str, note: str = "", duplicate_of=None, datasets=(), mine_similar: int = 0
) -> ResolveResult:
    """Close a bug as fixed, won't fix or duplicate. Resolving again the same way is a no-op
    (changed=False); a bug closed another way must be reopened first (409).

    A fixed bug hands its failures to validation datasets (the chosen ones and those following its
    tags) and optionally mines `mine_similar` look-alikes for labeling: recorded here, run in Celery
    after commit, idempotent (resolving twice never adds an item twice)."""
    result = _bug_resolve(bug=bug, actor=actor, resolution=resolution, note=note, duplicate_of=duplicate_of)
    if resolution == Resolution.FIXED:
        from bugqueue.services.datasets import bug_datasets_flow_start

        result.flow = bug_datasets_flow_start(
            bug=result.bug, actor=actor, dataset_ids=datasets, mine_similar=mine_similar
        )
    elif datasets or mine_similar:
        raise ValidationFailed(
            "datasets and mine_similar go with resolution fixed.", fields={"datasets": ["Only for resolution fixed."]}
        )
    return result


def _bug_resolve(*, bug: Bug, actor, resolution: str, note: str = "", duplicate_of=None) -> ResolveResult:
    if resolution not in Resolution.values:
        raise ValidationFailed(
            f"resolution must be one of {', '.join(Resolution.values)}.", fields={"resolution": ["Invalid choice."]}
        )
    if not isinstance(note, str) or len(note) > MAX_COMMENT_CHARS:
        raise ValidationFailed("note must be a string of at most 20,000 characters.", fields={"note": ["Too long."]})
    bug = _lock(bug.pk)
    target_status = RESOLUTION_STATUS[resolution]
    if bug.status == target_status:
        if resolution == Resolution.DUPLICATE and duplicate_of not in (None, ""):
            target = _duplicate_target(bug=bug, duplicate_of=duplicate_of)
            if target.pk != bug.duplicate_of_id:
                raise Conflict(
                    f"This bug is already a duplicate of #{bug.duplicate_of_id}; reopen it first.",
                    code="invalid_transition",
                )
        return ResolveResult(bug=bug, changed=False)
    if target_status not in TRANSITIONS[bug.status]:
        _refuse_transition(bug.status, target_status)
    now = timezone.now()
    old_status = bug.status
    events = _close(bug=bug, actor=actor, resolution=resolution, note=note.strip(), duplicate_of=duplicate_of, now=now)
    BugEvent.objects.bulk_create(events)
    announce_status_changed(bug=bug, old=old_status, new=bug.status, actor=actor)
    return ResolveResult(bug=bug, changed=True)


def _member_user(*, project_id: int, username: str):
    user = User.objects.filter(username=username).first()
    if user is None or not (user.is_staff or Membership.objects.filter(user=user, project_id=project_id).exists()):
        raise ValidationFailed(
            f"{username!r} is not a member of this project.",
            fields={"assignee": ["Must be a member of the bug's project."]},
        )
    return user


@transaction.atomic
def bug_update(
    *,
    bug: Bug,
    actor,
    status=UNSET,
    priority=UNSET,
    assignee=UNSET,
    tags=UNSET,
    tags_add=UNSET,
    tags_remove=UNSET,
    duplicate_of=UNSET,
    note: str = "",
) -> Bug:
    """Change status / priority / assignee (username or None) / tags. `tags` replaces the whole list;
    `tags_add` / `tags_remove` change only the slugs they name (the others stay), so two people
    tagging at once never drop each other's tags. `tags` cannot be combined with them.
    Closing statuses go through the same path as bug_resolve."""
    bug = _lock(bug.pk)
    now = timezone.now()
    # 1. validate everything
    if status is not UNSET and status not in BugStatus.values:
        raise ValidationFailed(
            f"status must be one of {', '.join(BugStatus.values)}.", fields={"status": ["Invalid choice."]}
        )
    if priority is not UNSET and priority not in Priority.values:
        raise ValidationFailed(
            f"priority must be one of {', '.join(Priority.values)}.", fields={"priority": ["Invalid choice."]}
        )
    new_assignee = UNSET
    if assignee is not UNSET:
        new_assignee = None if assignee in (None, "") else _member_user(project_id=bug.project_id, username=assignee)
    tag_rows = UNSET if tags is UNSET else tags_resolve(tags)
    if tag_rows is not UNSET and (tags_add is not UNSET or tags_remove is not UNSET):
        raise ValidationFailed(
            "Send either tags (the full list) or tags_add / tags_remove, not both.",
            fields={"tags": ["Not with tags_add or tags_remove."]},
        )
    add_rows = [] if tags_add is UNSET else tags_resolve(tags_add, field="tags_add")
    remove_rows = [] if tags_remove is UNSET else tags_resolve(tags_remove, field="tags_remove")
    both = {t.slug for t in add_rows} & {t.slug for t in remove_rows}
    if both:
        raise ValidationFailed(
            f"A tag cannot be added and removed at once: {', '.join(sorted(both))}.",
            fields={"tags_add": [f"Also in tags_remove: {s!r}." for s in sorted(both)]},
        )
    if duplicate_of is not UNSET and duplicate_of not in (None, "") and status != BugStatus.DUPLICATE:
        raise ValidationFailed(
            "duplicate_of goes with status duplicate.", fields={"duplicate_of": ["Set status to duplicate."]}
        )
    status_change = status is not UNSET and status != bug.status
    if status_change and status not in TRANSITIONS[bug.status]:
        _refuse_transition(bug.status, status)
    if status_change and status == BugStatus.DUPLICATE:
        _duplicate_target(bug=bug, duplicate_of=None if duplicate_of is UNSET else duplicate_of)

    # 2. write, with one history row per changed field
    events, fields = [], []
    if priority is not UNSET and priority != bug.priority:
        events.append(_event(bug, actor, "priority", bug.priority, priority, note, now))
        bug.priority = priority
        fields.append("priority")
    if new_assignee is not UNSET and getattr(new_assignee, "pk", None) != bug.assignee_id:
        old = bug.assignee.username if bug.assignee_id else ""
        events.append(_event(bug, actor, "assignee", old, getattr(new_assignee, "username", ""), note, now))
        bug.assignee = new_assignee
        fields.append("assignee")
    if fields:
        bug.save(update_fields=fields + ["updated_at"])
    if tag_rows is not UNSET:
        current = sorted(bug.tags.values_list("slug", flat=True))
        wanted = sorted(t.slug for t in tag_rows)
        if current != wanted:
            bug.tags.set(tag_rows)
            events.append(_event(bug, actor, "tags", ",".join(current), ",".join(wanted), note, now))
    if add_rows or remove_rows:
        current = set(bug.tags.values_list("slug", flat=True))
        adding = [t for t in add_rows if t.slug not in current]
        removing = [t for t in remove_rows if t.slug in current]
        if adding:
            bug.tags.add(*adding)
        if removing:
            bug.tags.remove(*removing)
        if adding or removing:
            after = sorted((current | {t.slug for t in adding}) - {t.slug for t in removing})
            change = [f"+{t.slug}" for t in adding] + [f"-{t.slug}" for t in removing]
            events.append(
                _event(bug, actor, "tags", ",".join(sorted(current)), ",".join(after), note or " ".join(change), now)
            )
    if status_change:
        old_status = bug.status
        if status in CLOSED_STATUSES:
            events += _close(
                bug=bug,
                actor=actor,
                resolution=STATUS_RESOLUTION[status],
                note=note,
                now=now,
                duplicate_of=None if duplicate_of is UNSET else duplicate_of,
            )
        elif bug.status in CLOSED_STATUSES:
            events += _reopen(bug=bug, actor=actor, note=note, now=now)
        else:
            events.append(_event(bug, actor, "status", bug.status, status, note, now))
            bug.status = status
            if bug.triaged_at is None:
                bug.triaged_at = now
            bug.save(update_fields=["status", "triaged_at", "updated_at"])
        announce_status_changed(bug=bug, old=old_status, new=bug.status, actor=actor)
    if events:
        BugEvent.objects.bulk_create(events)
    return bug
