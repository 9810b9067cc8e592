"""Reads, and permission-checked accessors. Non-members get NotFound (no existence leak);
members without the needed role get Forbidden. Staff act as managers everywhere."""

from django.db.models import Count, Q

from .errors import Forbidden, NotFound
from .models import Item, ItemStatus, LabelClass, Membership, Project, Role

ANY_ROLE = (Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER)
REVIEW_ROLES = (Role.REVIEWER, Role.MANAGER)
MANAGER_ROLES = (Role.MANAGER,)


def membership_role(*, user, project_id):
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return Role.MANAGER
    return Membership.objects.filter(user=user, project_id=project_id).values_list("role", flat=True).first()


def access_project(*, user, project_id, roles=ANY_ROLE, lock=False) -> Project:
    """The project if `user` may see it with one of `roles`; NotFound / Forbidden otherwise."""
    try:
        project_id = int(project_id)
    except (TypeError, ValueError):
        raise NotFound("Project not found.")
    role = membership_role(user=user, project_id=project_id)
    if role is None:
        raise NotFound("Project not found.")
    qs = Project.objects.all()
    if lock:
        qs = qs.select_for_update(of=("self",))
    project = qs.filter(pk=project_id).first()
    if project is None:
        raise NotFound("Project not found.")
    if role not in roles:
        raise Forbidden(f"This needs the {' or '.join(str(r) for r in roles)} role in this project.")
    project.user_role = role
    return project


def project_list(*, user):
    qs = Project.objects.all() if user.is_staff else Project.objects.filter(memberships__user=user)
    return qs.order_by("id").prefetch_related("labels")


def project_list_with_counts(*, user):
    """Projects the user sees, with item counts per status (one query)."""
    return (
        project_list(user=user)
        .annotate(
            n_items=Count("items"),
            n_open=Count("items", filter=Q(items__status=ItemStatus.OPEN)),
            n_disputed=Count("items", filter=Q(items__status__in=[ItemStatus.DISPUTED, ItemStatus.CONFLICT])),
            n_resolved=Count("items", filter=Q(items__status=ItemStatus.RESOLVED)),
        )
    )


def project_labels(*, project) -> list[LabelClass]:
    return list(LabelClass.objects.filter(project=project).order_by("position", "id"))


def project_label_keys(*, project) -> list[str]:
    return list(LabelClass.objects.filter(project=project).order_by("position", "id").values_list("key", flat=True))


def project_members(*, project):
    return Membership.objects.filter(project=project).select_related("user").order_by("id")


def item_list(*, project, status=None, external_id=None):
    qs = Item.objects.filter(project=project)
    if status:
        qs = qs.filter(status=status)
    if external_id:
        qs = qs.filter(external_id=external_id)
    return qs
