import pytest

from bugqueue.models import Dataset, DatasetPending, Evaluation
from bugqueue.selectors.datasets import (
    access_dataset,
    live_members,
    members_at,
    pending_item_ids,
    version_delta,
)
from bugqueue.selectors.evaluations import evaluation_failures_view
from bugqueue.services.datasets import Addition, dataset_version_create
from bugqueue.services.evaluations import evaluation_run, predictions_parse
from common.errors import Forbidden, NotFound
from labeling.selectors.access import MANAGER_ROLES
from tests.bugqueue.factories import failing_bug, label, make_items
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def test_members_at_a_version_and_live_members(project):
    ds = Dataset.objects.create(project=project, name="core")
    a, b, c = make_items(project, 3)
    dataset_version_create(dataset_id=ds.pk, add=[Addition(a.pk, "pos"), Addition(b.pk, "pos")])
    dataset_version_create(dataset_id=ds.pk, add=[Addition(c.pk, "neg")], remove_item_ids=[a.pk])
    assert set(members_at(dataset_id=ds.pk, number=1).values_list("item_id", flat=True)) == {a.pk, b.pk}
    assert set(members_at(dataset_id=ds.pk, number=2).values_list("item_id", flat=True)) == {b.pk, c.pk}
    assert set(live_members(ds.pk).values_list("item_id", "label")) == {(b.pk, "pos"), (c.pk, "neg")}


def test_pending_item_ids_names_only_items_still_waiting(project, django_assert_num_queries):
    ds = Dataset.objects.create(project=project, name="core")
    waiting, joined, other = make_items(project, 3)
    bug = failing_bug(project)
    DatasetPending.objects.create(dataset=ds, item=waiting, bug=bug, reason="failure")
    DatasetPending.objects.create(dataset=ds, item=joined, bug=bug, reason="failure", added_in=1)
    assert pending_item_ids([waiting.pk, joined.pk, other.pk]) == [waiting.pk]
    assert pending_item_ids([waiting.pk], project_id=project.pk) == [waiting.pk]
    quiet = ProjectFactory(creator=project.created_by)
    with django_assert_num_queries(1):  # the probe answers: nothing waits in that project
        assert pending_item_ids([waiting.pk, other.pk], project_id=quiet.pk) == []


def test_access_dataset_roles_and_visibility(user, project):
    ds = Dataset.objects.create(project=project, name="core")
    annotator = add_member(project)
    assert access_dataset(user=annotator, dataset_id=ds.pk).project.user_role == "annotator"
    with pytest.raises(Forbidden):
        access_dataset(user=annotator, dataset_id=ds.pk, roles=MANAGER_ROLES)
    for who, dataset_id in ((UserFactory(), ds.pk), (user, ds.pk + 1000), (user, "nope"), (user, 2**64)):
        with pytest.raises(NotFound, match="Dataset not found"):
            access_dataset(user=who, dataset_id=dataset_id)


def test_version_delta_lists_added_and_removed_rows(user, project):
    ds = Dataset.objects.create(project=project, name="core")
    a, b = make_items(project, 2)
    dataset_version_create(dataset_id=ds.pk, add=[Addition(a.pk, "pos")])
    dataset_version_create(dataset_id=ds.pk, add=[Addition(b.pk, "neg")], remove_item_ids=[a.pk])
    ds = access_dataset(user=user, dataset_id=ds.pk)
    delta = version_delta(dataset=ds, number=2, user=user)
    assert (delta["number"], delta["against"], delta["reason"], delta["bug"]) == (2, 1, "manual", None)
    assert delta["added"] == [{"external_id": b.external_id, "label": "neg", "bug": None}]
    assert delta["removed"] == [{"external_id": a.external_id, "label": "pos", "bug": None}]
    with pytest.raises(NotFound):
        version_delta(dataset=ds, number=3, user=user)


def test_evaluation_failures_lists_the_wrong_answers(user, project):
    items = make_items(project, 4, prefix="e")
    label(items[:2], "pos")
    label(items[2:], "neg")
    ds = Dataset.objects.create(project=project, name="core")
    dataset_version_create(
        dataset_id=ds.pk, add=[Addition(i.pk, t) for i, t in zip(items, ["pos", "pos", "neg", "neg"])]
    )
    rows = [{"external_id": i.external_id, "label": p} for i, p in zip(items, ["pos", "neg", "neg", "pos"])]
    evaluation = evaluation_run(
        project=project, actor=user, model_version="m1", batch=predictions_parse(project=project, rows=rows)
    )
    view = evaluation_failures_view(user=user, evaluation_id=evaluation.pk, dataset_id=ds.pk)
    assert view["evaluation"].pk == evaluation.pk and view["dataset"].pk == ds.pk and view["hidden"] == 0
    assert [(r["external_id"], r["expected"], r["predicted"]) for r in view["rows"]] == [
        (items[1].external_id, "pos", "neg"),
        (items[3].external_id, "neg", "pos"),
    ]
    other = Dataset.objects.create(project=project, name="never evaluated")
    with pytest.raises(NotFound):
        evaluation_failures_view(user=user, evaluation_id=evaluation.pk, dataset_id=other.pk)
    with pytest.raises(NotFound):
        evaluation_failures_view(user=UserFactory(), evaluation_id=evaluation.pk, dataset_id=ds.pk)
    assert Evaluation.objects.count() == 1


def test_bug_dataset_progress_per_flow_and_in_total(user, project, django_assert_max_num_queries):
    from bugqueue.models import BugDatasetFlow, DatasetVersion, Tag
    from bugqueue.selectors.datasets import bug_dataset_progress, resolve_dialog_datasets

    core = Dataset.objects.create(project=project, name="core", gate=True)
    flips = Dataset.objects.create(project=project, name="flips")
    flips.tags.set(Tag.objects.filter(slug="label_flip"))
    known, unknown, mined, odd, elsewhere = make_items(project, 5, prefix="g")
    bug = failing_bug(project, title="flip", failures=[(known, "pos"), (unknown, None)])
    other = failing_bug(project, title="other", failures=[(elsewhere, "neg")])
    empty = bug_dataset_progress(bug=bug)
    assert empty["flows"] == [] and empty["total"]["added"] == 0 and empty["total"]["versions"] == []

    for ds in (core, flips):
        dataset_version_create(dataset_id=ds.pk, add=[Addition(known.pk, "pos", bug.pk)], bug_id=bug.pk, reason="bug")
        DatasetPending.objects.create(dataset=ds, item=unknown, bug=bug, reason="failure")
        DatasetPending.objects.create(dataset=ds, item=mined, bug=bug, reason="similar", similarity=0.9)
    DatasetPending.objects.create(dataset=core, item=odd, bug=bug, reason="conflict", expected_label="pos")
    joined = DatasetPending.objects.get(dataset=core, item=mined)  # labeled since: not waiting any more
    dataset_version_create(dataset_id=core.pk, add=[Addition(mined.pk, "neg", bug.pk)], bug_id=bug.pk)
    joined.added_in = 2
    joined.save()
    dataset_version_create(dataset_id=core.pk, add=[Addition(elsewhere.pk, "neg", other.pk)], bug_id=other.pk)
    BugDatasetFlow.objects.create(
        bug=bug,
        datasets=[core.pk],
        status="done",
        added=2,
        pending=2,
        mined=1,
        versions=[{"dataset": core.pk, "number": 1}, {"dataset": flips.pk, "number": 1}],
    )
    BugDatasetFlow.objects.create(bug=bug, datasets=[core.pk], mine_similar=3, status="queued", conflicts=1)

    with django_assert_max_num_queries(5):
        progress = bug_dataset_progress(bug=bug)
    newest, first = progress["flows"]
    assert (newest["status"], newest["conflicts"], newest["mine_similar"], newest["versions"]) == ("queued", 1, 3, [])
    assert first["versions"] == [
        {"dataset": core.pk, "name": "core", "number": 1, "url": f"/projects/{project.pk}/datasets#dataset-{core.pk}"},
        {
            "dataset": flips.pk,
            "name": "flips",
            "number": 1,
            "url": f"/projects/{project.pk}/datasets#dataset-{flips.pk}",
        },
    ]
    assert first["datasets"] == [
        {"id": core.pk, "name": "core", "url": f"/projects/{project.pk}/datasets#dataset-{core.pk}"}
    ]
    total = progress["total"]
    # added: rows (known in both, mined in core); waiting: items once each (unknown in both, mined in flips)
    assert (total["added"], total["waiting"], total["conflicts"], total["mined"]) == (3, 2, 1, 1)
    assert [(v["name"], v["number"]) for v in total["versions"]] == [("core", 1), ("core", 2), ("flips", 1)]
    assert [(d["name"], d["added"], d["waiting"], d["conflicts"]) for d in total["datasets"]] == [
        ("core", 2, 1, 1),
        ("flips", 1, 2, 0),
    ]
    assert DatasetVersion.objects.filter(bug=other).count() == 1  # another bug's version is not counted

    listed = resolve_dialog_datasets(project=project)
    assert [(d["name"], d["tags"], d["gate"]) for d in listed] == [("core", [], True), ("flips", ["label_flip"], False)]
