"""Reads, and permission-checked accessors. Non-members get NotFound (no existence leak);
members without the needed role get Forbidden. Staff act as managers everywhere."""

from django.db.models import Count, Q

from common.errors import Forbidden, NotFound
from .models import Item, ItemStatus, LabelClass, Membership, Project, Role, reopen_pending, reopen_requested

ANY_ROLE = (Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER)
REVIEW_ROLES = (Role.REVIEWER, Role.MANAGER)
MANAGER_ROLES = (Role.MANAGER,)


def membership_role(*, user, project_id):
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return Role.MANAGER
    return Membership.objects.filter(user=user, project_id=project_id).values_list("role", flat=True).first()


def _project_with_role(*, user, project_id) -> Project | None:
    if not user.is_authenticated:
        return None
    rows = list(Project.objects.raw(
        f"SELECT p.*, m.role AS member_role FROM {Project._meta.db_table} p "
        f"LEFT JOIN {Membership._meta.db_table} m ON m.project_id = p.id AND m.user_id = %s WHERE p.id = %s",
        [user.pk, project_id],
    ))
    return rows[0] if rows else None


def access_project(*, user, project_id, roles=ANY_ROLE, lock=False) -> Project:
    """The project if `user` may see it with one of `roles`; NotFound / Forbidden otherwise."""
    try:
        project_id = int(project_id)
    except (TypeError, ValueError):
        raise NotFound("Project not found.")
    if not 0 < project_id < 2**63:  # no bigint key holds it: the database would refuse the query
        raise NotFound("Project not found.")
    if lock:
        role = membership_role(user=user, project_id=project_id)
        project = None if role is None else (
            Project.objects.select_for_update(of=("self",)).filter(pk=project_id).first())
    else:
        # The hot path (every queue and API call): project and role in one plain query.
        project = _project_with_role(user=user, project_id=project_id)
        role = None if project is None else (Role.MANAGER if user.is_staff else project.member_role)
    if project is None or role is None:
        raise NotFound("Project not found.")
    if role not in roles:
        raise Forbidden(f"This needs the {' or '.join(str(r) for r in roles)} role in this project.")
    project.user_role = role
    return project


PROJECT_CREATE_PERMISSION = "labeling.add_project"


def project_create_allowed(*, user) -> bool:
    """Creating projects belongs to staff and to the users staff allow (Django's `labeling.add_project`
    permission, given in the admin or with POST /api/users `can_create_projects`). An export grant's
    service account, or any member, does not get it with its grant or role."""
    return bool(user.is_authenticated and (user.is_staff or user.has_perm(PROJECT_CREATE_PERMISSION)))


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
    return (
        project_list(user=user)
        .annotate(
            n_items=Count("items"),
            n_open=Count("items", filter=Q(items__status=ItemStatus.OPEN)) + requested,
            n_disputed=Count("items", filter=Q(items__status__in=[ItemStatus.DISPUTED, ItemStatus.CONFLICT])) - requested,
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
