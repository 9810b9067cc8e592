"""Tags changed one at a time (the other tags always stay, with a history row), over the service,
the API and the bug page's forms; @mentions in bug comments recorded and mailed like item comments."""

import pytest
from django.core import mail
from django.test import Client

from bugqueue.models import BugCommentMention, BugEvent
from bugqueue.services.bugs import bug_update
from bugqueue.services.comments import comment_add
from common.errors import ValidationFailed
from labeling.models import Role
from tests.bugqueue.factories import make_bug
from tests.conftest import client_for
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def slugs(bug):
    return sorted(bug.tags.values_list("slug", flat=True))


def test_add_and_remove_one_tag_keeps_the_others_and_writes_history(user, project):
    bug = make_bug(project, tags=["label_flip", "data_drift"])
    bug_update(bug=bug, actor=user, tags_add=["schema_change"])
    assert slugs(bug) == ["data_drift", "label_flip", "schema_change"]
    bug_update(bug=bug, actor=user, tags_remove=["label_flip"])
    assert slugs(bug) == ["data_drift", "schema_change"]
    bug_update(bug=bug, actor=user, tags_add=["data_drift"], tags_remove=["label_flip"])  # nothing to change
    rows = list(BugEvent.objects.filter(bug=bug, field="tags").values_list("from_value", "to_value", "note"))
    assert rows == [
        ("data_drift,label_flip", "data_drift,label_flip,schema_change", "+schema_change"),
        ("data_drift,label_flip,schema_change", "data_drift,schema_change", "-label_flip"),
    ]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"tags_add": ["no_such_tag"]}, "tags_add"),
        ({"tags_remove": "label_flip"}, "tags_remove"),
        ({"tags_add": ["data_drift"], "tags_remove": ["data_drift"]}, "tags_add"),
        ({"tags": ["data_drift"], "tags_add": ["label_flip"]}, "tags"),
    ],
)
def test_bad_tag_changes_are_refused_and_change_nothing(user, project, changes, field):
    bug = make_bug(project, tags=["label_flip"])
    with pytest.raises(ValidationFailed) as err:
        bug_update(bug=bug, actor=user, priority="p0", **changes)
    assert field in err.value.fields
    bug.refresh_from_db()
    assert slugs(bug) == ["label_flip"] and bug.priority == "p2"
    assert not BugEvent.objects.filter(bug=bug).exclude(field="created").exists()


def test_api_patch_tags_add_and_remove(user, project):
    bug = make_bug(project, tags=["label_flip", "data_drift"])
    c = client_for(user)
    res = c.patch(f"/api/bugs/{bug.pk}", {"tags_add": ["schema_change"]}, format="json")
    assert res.status_code == 200 and sorted(res.json()["tags"]) == ["data_drift", "label_flip", "schema_change"]
    res = c.patch(f"/api/bugs/{bug.pk}", {"tags_remove": ["data_drift"]}, format="json")
    assert res.status_code == 200 and sorted(res.json()["tags"]) == ["label_flip", "schema_change"]
    res = c.patch(f"/api/bugs/{bug.pk}", {"tags_add": ["nope"]}, format="json")
    assert res.status_code == 400 and "tags_add" in res.json()["error"]["fields"]
    assert slugs(bug) == ["label_flip", "schema_change"]


def test_page_forms_add_and_remove_one_tag(user, project):
    bug = make_bug(project, tags=["label_flip", "data_drift"])
    c = Client()
    c.force_login(user)
    html = c.get(f"/bugs/{bug.pk}").content.decode()
    assert 'name="tags_remove" value="label_flip"' in html and 'name="tags_remove" value="data_drift"' in html
    assert 'multiple size="6"' not in html  # the multi-select that dropped tags is gone
    assert c.post(f"/bugs/{bug.pk}/edit", {"tags_add": "schema_change"}).status_code == 302
    assert c.post(f"/bugs/{bug.pk}/edit", {"tags_remove": "label_flip"}).status_code == 302
    assert slugs(bug) == ["data_drift", "schema_change"]


def test_comment_mentions_are_recorded_and_mailed_to_members_only(
    user, project, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    bug = make_bug(project, title="Refunds routed to shipping")
    maya = add_member(project, UserFactory(username="maya", email="maya@example.com"), Role.ANNOTATOR)
    UserFactory(username="stranger", email="s@example.com")  # not a member: not mentioned
    with django_capture_on_commit_callbacks(execute=True):
        comment = comment_add(bug=bug, author=user, body=f"@maya and @stranger, see this. @{user.username}")
    assert list(BugCommentMention.objects.values_list("comment_id", "user__username")) == [(comment.pk, "maya")]
    assert [m.to for m in mail.outbox] == [["maya@example.com"]]
    assert f"bug #{bug.pk}" in mail.outbox[0].subject and f"/bugs/{bug.pk}#comments" in mail.outbox[0].body
    c = Client()
    c.force_login(maya)
    html = c.get(f"/bugs/{bug.pk}").content.decode()
    assert '<strong class="bq-mention">@maya</strong>' in html and "@stranger" in html
    assert '<strong class="bq-mention">@stranger' not in html
