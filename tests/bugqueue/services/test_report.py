import pytest

from bugqueue.models import Bug, FailureExample
from bugqueue.services.report import MAX_FAILURES_PER_REPORT, bug_report
from common.errors import Forbidden, TooLarge, ValidationFailed
from labeling.models import Item
from tests.bugqueue.factories import ingest_items

pytestmark = pytest.mark.django_db


def test_a_report_opens_a_bug_with_its_tags_and_failures(user, project):
    items = ingest_items(project, 2, model_version="v1", label="pos")
    result = bug_report(
        project=project,
        reporter=user,
        title="  Refunds   misrouted ",
        kind="failed_prediction",
        tags=["label_flip"],
        priority="p1",
        model_version="v1",
        failures=[
            {"external_id": items[0].external_id, "predicted_label": "pos", "expected_label": "neg"},
            {"external_id": items[1].external_id, "predicted_label": "pos"},
        ],
    )
    bug = result.bug
    assert result.created and result.recorded == 2 and bug.occurrences == 2
    assert (bug.title, bug.priority, bug.model_version, bug.reporter) == ("Refunds   misrouted", "p1", "v1", user)
    assert list(bug.tags.values_list("slug", flat=True)) == ["label_flip"]
    failures = list(FailureExample.objects.filter(bug=bug).order_by("item_id"))
    assert [(f.item_id, f.expected_label, f.model_version) for f in failures] == [
        (items[0].pk, "neg", "v1"),
        (items[1].pk, None, "v1"),
    ]
    assert all(f.predicted_at is not None for f in failures)  # taken from the items' production predictions


def test_bad_input_writes_nothing(user, project):
    cases = [
        {"title": "", "kind": "other"},
        {"title": "x", "kind": "nope"},
        {"title": "x", "kind": "other", "priority": "p9"},
        {"title": "x", "kind": "other", "tags": ["nope"]},
        {"title": "x", "kind": "other", "failures": [{"external_id": "ghost", "predicted_label": "pos"}]},
        {"title": "x", "kind": "other", "failures": [{"payload": {"text": "t"}, "predicted_label": "nope"}]},
        {"title": "x", "kind": "other", "failures": [{"payload": {"text": "t"}, "colour": "red"}]},
    ]
    for kw in cases:
        with pytest.raises(ValidationFailed):
            bug_report(project=project, reporter=user, **kw)
    with pytest.raises(TooLarge):
        bug_report(
            project=project,
            reporter=user,
            title="x",
            kind="other",
            failures=[{"payload": {"n": i}} for i in range(MAX_FAILURES_PER_REPORT + 1)],
        )
    assert Bug.objects.count() == 0 and Item.objects.filter(project=project).count() == 0


def test_a_payload_becomes_an_item_only_for_a_caller_who_may_add_items(user, project):
    failure = {"payload": {"text": "a brand new input"}, "predicted_label": "pos"}
    with pytest.raises(Forbidden):
        bug_report(project=project, reporter=user, title="x", kind="other", failures=[failure], may_add_items=False)
    assert Bug.objects.count() == 0 and Item.objects.filter(project=project).count() == 0
    result = bug_report(project=project, reporter=user, title="x", kind="other", failures=[failure, dict(failure)])
    (item,) = Item.objects.filter(project=project)
    assert item.payload == {"text": "a brand new input"} and result.recorded == 2
    assert set(FailureExample.objects.filter(bug=result.bug).values_list("item_id", flat=True)) == {item.pk}
