"""Permission-checked access to projects. Non-members get NotFound (no existence leak); members
without the needed role get Forbidden. Staff act as managers everywhere."""

from django.db.models import OuterRef, Subquery

from common.errors import Forbidden, NotFound
from labeling.models import Membership, Project, Role

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
    """The project with the user's membership role as `member_role` (None for a non-member), in one query."""
    if not user.is_authenticated:
        return None
    role = Membership.objects.filter(project_id=OuterRef("pk"), user_id=user.pk).values("role")[:1]
    return Project.objects.annotate(member_role=Subquery(role)).filter(pk=project_id).first()


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
        project = (
            None if role is None else (Project.objects.select_for_update(of=("self",)).filter(pk=project_id).first())
        )
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
