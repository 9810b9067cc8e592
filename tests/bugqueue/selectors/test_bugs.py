import pytest

from bugqueue.selectors.bugs import access_bug, tags_resolve
from common.errors import Forbidden, NotFound, ValidationFailed
from labeling.models import Role
from labeling.selectors.access import REVIEW_ROLES
from tests.bugqueue.factories import make_bug
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def test_access_bug_gives_the_bug_with_its_project_and_the_users_role(user, project, django_assert_max_num_queries):
    bug = make_bug(project, title="visible")
    annotator = add_member(project, role=Role.ANNOTATOR)
    with django_assert_max_num_queries(2):  # the bug (with assignee and reporter), then the project with the role
        got = access_bug(user=annotator, bug_id=str(bug.pk))
        assert got.reporter == user and got.assignee is None
    assert got.pk == bug.pk and got.project.pk == project.pk and got.project.user_role == Role.ANNOTATOR
    with pytest.raises(Forbidden):
        access_bug(user=annotator, bug_id=bug.pk, roles=REVIEW_ROLES)
    assert access_bug(user=user, bug_id=bug.pk, roles=REVIEW_ROLES).project.user_role == Role.MANAGER


@pytest.mark.parametrize("bug_id", [None, "", "abc", "1.5", -1, 0, 2**63, 10**30])
def test_access_bug_bad_ids_are_not_found(user, project, bug_id):
    make_bug(project)
    with pytest.raises(NotFound, match="Bug not found"):
        access_bug(user=user, bug_id=bug_id)


def test_a_bug_of_a_project_the_user_may_not_see_is_not_found(user, project):
    bug = make_bug(project)
    other = ProjectFactory(creator=UserFactory())
    foreign = make_bug(other)
    for who, bug_id in ((UserFactory(), bug.pk), (user, foreign.pk), (user, foreign.pk + bug.pk + 1000)):
        with pytest.raises(NotFound, match="Bug not found"):
            access_bug(user=who, bug_id=bug_id)


def test_tags_resolve_keeps_the_given_order_and_lists_unknown_slugs():
    assert [t.slug for t in tags_resolve(["schema_change", "label_flip", "schema_change"])] == [
        "schema_change",
        "label_flip",
    ]
    assert tags_resolve([]) == []
    with pytest.raises(ValidationFailed) as exc:
        tags_resolve(["label_flip", "nope", "nada"])
    assert "nope" in exc.value.message and "nada" in exc.value.message
    with pytest.raises(ValidationFailed):
        tags_resolve("label_flip")
