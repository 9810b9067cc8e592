"""Permission-checked access to the bug queue's rows. Each row belongs to a labeling project, and the
project decides who sees it (labeling.selectors.access.access_project): a row of a project the
user may not see is NotFound under the row's own name, a member without the role gets Forbidden."""

from common.errors import NotFound
from labeling.selectors.access import ANY_ROLE, access_project

MAX_ID = 2**63 - 1  # a bigint primary key


def access_in_project(queryset, pk, *, user, roles=ANY_ROLE, what: str):
    """The row `pk` of `queryset` with `.project` set to its project as `user` may see it with one of
    `roles` (the project carries user_role); NotFound(f"{what} not found.") for a bad id, a missing
    row or a project the user may not see; Forbidden for the wrong role."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise NotFound(f"{what} not found.")
    row = queryset.filter(pk=pk).first() if 0 < pk <= MAX_ID else None
    if row is None:
        raise NotFound(f"{what} not found.")
    try:
        row.project = access_project(user=user, project_id=row.project_id, roles=roles)
    except NotFound:
        raise NotFound(f"{what} not found.")
    return row
