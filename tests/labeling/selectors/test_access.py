import pytest
from django.contrib.auth.models import AnonymousUser

from common.errors import Forbidden, NotFound
from labeling.models import Role
from labeling.selectors.access import MANAGER_ROLES, REVIEW_ROLES, access_project
from tests.labeling.factories import ProjectFactory, UserFactory, add_member


@pytest.mark.django_db
@pytest.mark.parametrize("lock", [False, True])
def test_each_user_gets_their_own_role(project, user, staff, lock):
    annotator, reviewer = add_member(project), add_member(project, role=Role.REVIEWER)
    add_member(ProjectFactory(creator=UserFactory()), user=annotator, role=Role.MANAGER)  # a role elsewhere
    assert access_project(user=user, project_id=project.pk, lock=lock).user_role == Role.MANAGER  # the creator
    assert access_project(user=annotator, project_id=project.pk, lock=lock).user_role == Role.ANNOTATOR
    as_reviewer = access_project(user=reviewer, project_id=str(project.pk), roles=REVIEW_ROLES, lock=lock)
    assert as_reviewer.user_role == Role.REVIEWER
    assert access_project(user=staff, project_id=project.pk, roles=MANAGER_ROLES, lock=lock).user_role == Role.MANAGER


@pytest.mark.django_db
@pytest.mark.parametrize("lock", [False, True])
def test_non_members_get_not_found_and_members_without_the_role_forbidden(project, lock):
    annotator, stranger = add_member(project), UserFactory()
    with pytest.raises(NotFound):
        access_project(user=stranger, project_id=project.pk, lock=lock)
    with pytest.raises(NotFound):
        access_project(user=AnonymousUser(), project_id=project.pk, lock=lock)
    with pytest.raises(Forbidden):
        access_project(user=annotator, project_id=project.pk, roles=REVIEW_ROLES, lock=lock)
    for missing in (project.pk + 1000, 0, -1, 2**63, "x", None):
        with pytest.raises(NotFound):
            access_project(user=annotator, project_id=missing, lock=lock)


@pytest.mark.django_db
def test_the_unlocked_path_reads_project_and_role_in_one_query(project, django_assert_num_queries):
    annotator = add_member(project)
    with django_assert_num_queries(1):
        found = access_project(user=annotator, project_id=project.pk)
    assert found.pk == project.pk and found.name == project.name and found.user_role == Role.ANNOTATOR
    with django_assert_num_queries(1), pytest.raises(NotFound):
        access_project(user=UserFactory.build(pk=10**9), project_id=project.pk)
