"""The bug queue's events (common.events): the body of each bug and dataset event, emitted by the
service that made the change, in its transaction (sent after commit). The fields are documented in
common.events.EVENT_TYPES and the README's "Events" section."""

from bugqueue.models import Bug, Dataset, DatasetVersion
from common.events import emit


def _bug_data(bug: Bug, *, tags=None) -> dict:
    if tags is None:
        tags = sorted(bug.tags.values_list("slug", flat=True))
    return {
        "bug_id": bug.pk,
        "title": bug.title,
        "kind": bug.kind,
        "priority": bug.priority,
        "model_version": bug.model_version,
        "tags": list(tags),
    }


def _emit(bug: Bug, type: str, subject: str, data: dict) -> None:
    emit(
        project_id=bug.project_id,
        type=type,
        subject=subject,
        data=data,
        path=f"/bugs/{bug.pk}",
        key=f"bug:{bug.pk}",
    )


def announce_bug_filed(*, bug: Bug, created: bool, regressed: bool, added: int, tags=None) -> None:
    """One filing's events: bug.created for a new bug; otherwise bug.regressed when it reopened a
    resolved bug, and bug.occurrences when it added occurrences to the existing bug. `tags`: the
    bug's tag slugs when the caller has read them already."""
    data = _bug_data(bug, tags=tags)
    if created:
        _emit(bug, "bug.created", f"Bug #{bug.pk} filed: {bug.title}", {**data, "occurrences": bug.occurrences})
        return
    if regressed:
        _emit(bug, "bug.regressed", f"Bug #{bug.pk} regressed: {bug.title}", {**data, "occurrences": bug.occurrences})
    if added:
        _emit(
            bug,
            "bug.occurrences",
            f"Bug #{bug.pk}: {added} new occurrence{'s' if added != 1 else ''} ({bug.occurrences} in all): {bug.title}",
            {**data, "occurrences": bug.occurrences, "new": added},
        )


def announce_status_changed(*, bug: Bug, old: str, new: str, actor, tags=None) -> None:
    """bug.status_changed, for a status change made through the bug service."""
    by = getattr(actor, "username", "") or ""
    _emit(
        bug,
        "bug.status_changed",
        f"Bug #{bug.pk} {old} -> {new}{f' by {by}' if by else ''}: {bug.title}",
        {**_bug_data(bug, tags=tags), "old": old, "new": new, "by": by},
    )


def announce_unsnoozed(*, bug: Bug, reason: str, actor, tags=None) -> None:
    """bug.unsnoozed, when a snoozed bug returns to the stream (its condition met, or by hand)."""
    by = getattr(actor, "username", "") or ""
    _emit(
        bug,
        "bug.unsnoozed",
        f"Bug #{bug.pk} is back from snooze ({reason}): {bug.title}",
        {**_bug_data(bug, tags=tags), "reason": reason, "occurrences": bug.occurrences, "by": by},
    )


def announce_dataset_version(*, dataset: Dataset, version: DatasetVersion) -> None:
    """dataset.version_created, for a version just written."""
    emit(
        project_id=dataset.project_id,
        type="dataset.version_created",
        subject=f"Dataset {dataset.name} v{version.number}: +{version.added} -{version.removed} "
        f"~{version.relabeled}, {version.size} items",
        data={
            "dataset_id": dataset.pk,
            "name": dataset.name,
            "version": version.number,
            "items": version.size,
            "added": version.added,
            "removed": version.removed,
            "relabeled": version.relabeled,
            "reason": str(version.reason),
            "bug_id": version.bug_id,
        },
        path=f"/projects/{dataset.project_id}/datasets#dataset-{dataset.pk}",
        key=f"dataset:{dataset.pk}",
    )
