"""Reads of a project's label set: the labels offered for new work and the record of label changes."""

from labeling.models import GuidelineRevision, LabelClass, LabelOperation


def offered_labels(*, project_id: int) -> list[LabelClass]:
    """The labels annotators and reviewers may choose (retired ones are kept on rows, not offered)."""
    return list(LabelClass.objects.filter(project_id=project_id, retired_at__isnull=True).order_by("position", "id"))


def label_operations(*, project) -> list[LabelOperation]:
    return list(LabelOperation.objects.filter(project=project).select_related("actor").order_by("-id"))


def guideline_revisions(*, project) -> dict[int, list[GuidelineRevision]]:
    """Each label's guideline revisions, newest first, keyed by label id."""
    out: dict[int, list[GuidelineRevision]] = {}
    for rev in (
        GuidelineRevision.objects.filter(label__project=project).select_related("author").order_by("label_id", "-id")
    ):
        out.setdefault(rev.label_id, []).append(rev)
    return out
