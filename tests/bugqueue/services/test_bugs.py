import pytest

from bugqueue.models import Bug, BugEvent, BugProjectSettings, Comment
from bugqueue.selectors.bugs import bug_settings_get
from bugqueue.services.bug_settings import bug_settings_update
from bugqueue.services.bugs import bug_resolve, bug_update
from bugqueue.services.comments import comment_add
from common.errors import Conflict, ValidationFailed
from tests.bugqueue.factories import make_bug, resolve
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def events(bug):
    return list(
        BugEvent.objects.filter(bug=bug)
        .exclude(field="created")
        .order_by("id")
        .values_list("field", "from_value", "to_value")
    )


def test_update_writes_one_history_row_per_changed_field(user, project):
    bug = make_bug(project, priority="p2")
    member = add_member(project)
    bug_update(
        bug=bug,
        actor=user,
        status="triaged",
        priority="p0",
        assignee=member.username,
        tags=["data_drift"],
        note="weekly triage",
    )
    bug.refresh_from_db()
    assert (bug.status, bug.priority, bug.assignee, bug.triaged_at is not None) == ("triaged", "p0", member, True)
    assert events(bug) == [
        ("priority", "p2", "p0"),
        ("assignee", "", member.username),
        ("tags", "", "data_drift"),
        ("status", "new", "triaged"),
    ]
    assert set(BugEvent.objects.filter(bug=bug).exclude(field="created").values_list("note", flat=True)) == {
        "weekly triage"
    }
    bug_update(bug=bug, actor=user, status="triaged", priority="p0", tags=["data_drift"])  # nothing changes
    assert len(events(bug)) == 4


def test_update_validates_everything_before_writing(user, project):
    bug = make_bug(project, priority="p2")
    outsider = UserFactory()
    for bad in (
        {"status": "nope"},
        {"priority": "p9"},
        {"assignee": outsider.username},
        {"tags": ["nope"]},
        {"priority": "p0", "duplicate_of": bug.pk},
    ):
        with pytest.raises(ValidationFailed):
            bug_update(bug=bug, actor=user, **bad)
    bug.refresh_from_db()
    assert bug.priority == "p2" and events(bug) == []
    resolve(bug, user)
    with pytest.raises(Conflict):
        bug_update(bug=bug, actor=user, status="triaged", priority="p0")  # a closed bug only reopens
    bug.refresh_from_db()
    assert bug.priority == "p2" and bug.status == "resolved"


def test_resolve_then_reopen(user, project):
    bug = make_bug(project)
    result = bug_resolve(bug=bug, actor=user, resolution="wont_fix", note="by design")
    assert result.changed and result.bug.status == "wont_fix" and result.bug.resolution_note == "by design"
    assert result.flow is None  # only a fixed bug hands its failures to datasets
    assert bug_resolve(bug=bug, actor=user, resolution="wont_fix").changed is False
    with pytest.raises(Conflict):
        bug_resolve(bug=bug, actor=user, resolution="fixed")
    other = make_bug(project)
    with pytest.raises(ValidationFailed):
        bug_resolve(bug=other, actor=user, resolution="wont_fix", datasets=[1])
    with pytest.raises(ValidationFailed):
        bug_resolve(bug=other, actor=user, resolution="closed")
    reopened = bug_update(bug=bug, actor=user, status="new", note="seen again")
    assert reopened.status == "new" and reopened.reopened_at is not None and reopened.resolution == ""
    assert events(bug)[-1] == ("status", "wont_fix", "new")


def test_comment_add_strips_and_refuses_empty_or_huge_bodies(user, project):
    bug = make_bug(project)
    before = Bug.objects.get(pk=bug.pk).updated_at
    comment = comment_add(bug=bug, author=user, body="  the tokenizer again \n")
    assert comment.body == "the tokenizer again" and comment.author == user
    assert Bug.objects.get(pk=bug.pk).updated_at >= before
    for body in ("", "   ", None, "x" * 20_001):
        with pytest.raises(ValidationFailed):
            comment_add(bug=bug, author=user, body=body)
    assert Comment.objects.filter(bug=bug).count() == 1


def test_settings_default_then_saved(user, project):
    BugProjectSettings.objects.filter(project=project).delete()
    default = bug_settings_get(project=project)
    assert default.auto_file_failed_predictions is True and default._state.adding  # the defaults, unsaved
    assert not BugProjectSettings.objects.filter(project=project).exists()  # reading writes nothing
    row = bug_settings_update(project=project, actor=user, auto_file_failed_predictions=False)
    saved = bug_settings_get(project=project)
    assert saved.pk == row.pk and saved.auto_file_failed_predictions is False
    with pytest.raises(ValidationFailed):
        bug_settings_update(project=project, actor=user, auto_file_failed_predictions="yes")
