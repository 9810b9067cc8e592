"""The bug queue's part of labeling's item page: the bugs an item is a failure example of and the
validation datasets it is a member of. Labeling never imports the bug queue; its template loads these
tags instead ({% load item_links %}{% item_links item %})."""

from django import template

from bugqueue.models import Bug, Dataset, DatasetMember

register = template.Library()


@register.inclusion_tag("bugqueue/_item_links.html")
def item_links(item, visible=True):
    """Bugs (newest first) and datasets (current members) of `item`; nothing when `visible` is False
    (blind labeling: a bug's expected label or a dataset's frozen label would give the label away)."""
    if not visible:
        return {"hidden": True}
    bugs = list(Bug.objects.filter(failures__item_id=item.pk).distinct().order_by("-id")[:50])
    members = DatasetMember.objects.filter(item_id=item.pk, removed_in__isnull=True).values_list(
        "dataset_id", flat=True
    )
    datasets = list(Dataset.objects.filter(pk__in=members).order_by("name")[:50])
    return {"hidden": False, "bugs": bugs, "datasets": datasets, "project_id": item.project_id}
