"""Reads of projects, their labels, members and items, as the pages and the API list them."""

from django.db.models import Count, Q

from labeling.models import Item, ItemStatus, LabelClass, Membership, Project, reopen_pending, reopen_requested


def project_list(*, user):
    qs = Project.objects.all() if user.is_staff else Project.objects.filter(memberships__user=user)
    return qs.order_by("id").prefetch_related("labels")


def project_list_with_counts(*, user):
    """Projects the user sees, with item counts per status (one query). A disputed item waiting for
    the one more annotation a quality run asked for (ReopenRequest) counts as open."""
    # Through the items' reopen_request relation: one LEFT JOIN, one pass. (A correlated subquery per
    # project ran twice, once per count; Coalesce(Subquery(...)) went into the GROUP BY, where
    # PostgreSQL evaluated it once per item row and the list never returned with 173k requests.)
    requested = Count("items", filter=reopen_requested("items__"))
    return project_list(user=user).annotate(
        n_items=Count("items"),
        n_open=Count("items", filter=Q(items__status=ItemStatus.OPEN)) + requested,
        n_disputed=Count("items", filter=Q(items__status__in=[ItemStatus.DISPUTED, ItemStatus.CONFLICT])) - requested,
        n_resolved=Count("items", filter=Q(items__status=ItemStatus.RESOLVED)),
    )


def project_labels(*, project) -> list[LabelClass]:
    return list(LabelClass.objects.filter(project=project).order_by("position", "id"))


def project_label_keys(*, project) -> list[str]:
    return list(LabelClass.objects.filter(project=project).order_by("position", "id").values_list("key", flat=True))


def project_members(*, project):
    return Membership.objects.filter(project=project).select_related("user").order_by("id")


def item_list(*, project, status=None, external_id=None):
    """The project's items, optionally of one status. An item waiting for the one more annotation a
    quality run asked for (ReopenRequest) is listed, and shown, as open (`reopen_requested`)."""
    qs = Item.objects.filter(project=project).annotate(reopen_requested=reopen_pending())
    if status == ItemStatus.OPEN:
        qs = qs.filter(Q(status=ItemStatus.OPEN) | reopen_pending())
    elif status == ItemStatus.DISPUTED:
        qs = qs.filter(status=ItemStatus.DISPUTED).exclude(reopen_pending())
    elif status:
        qs = qs.filter(status=status)
    if external_id:
        qs = qs.filter(external_id=external_id)
    return qs
