"""Blind labeling in the bug queue, datasets and evaluations (labeling.selectors.blind), and who may
add items through a bug report. The permission matrix (tests/test_permissions.py) covers every
route; these tests pin what each role reads in detail."""

import json

import pytest

from bugqueue.models import Bug, EvaluationResult, FailureExample
from bugqueue.services.datasets import dataset_create, dataset_version_curate
from bugqueue.services.evaluations import evaluation_run, predictions_parse
from labeling.models import Item, Role
from labeling.services.annotations import annotation_submit
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.queue.claim import assignment_claim_next
from tests.bugqueue.factories import ingest_items, make_bug
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(user):
    """Three items for one annotator: `mine` labeled by them and resolved (closed for them),
    `resolved` decided without them (a quality run could still send it to them), `open`."""
    project = ProjectFactory(creator=user, annotations_per_item=1)
    annotator = add_member(project, role=Role.ANNOTATOR)
    reviewer = add_member(project, role=Role.REVIEWER)
    mine, resolved, opened = ingest_items(project, 3, label="pos")
    claim = assignment_claim_next(project=project, annotator=annotator)
    assert claim.item_id == mine.pk
    annotation_submit(assignment_id=claim.assignment_id, annotator=annotator, label="neg")
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(resolved.pk, "neg", "imported")])
    bug = make_bug(
        project,
        kind="failed_prediction",
        failures=[
            {"external_id": it.external_id, "predicted_label": "pos", "expected_label": exp, "model_version": "v1"}
            for it, exp in ((mine, "neg"), (resolved, "neg"), (opened, "neu"))
        ],
    )
    return {
        "project": project,
        "manager": user,
        "annotator": annotator,
        "reviewer": reviewer,
        "bug": bug,
        "mine": mine,
        "resolved": resolved,
        "open": opened,
    }


def test_bug_detail_hides_failures_an_annotator_may_still_label(world):
    bug = world["bug"]
    data = client_for(world["annotator"]).get(f"/api/bugs/{bug.pk}").json()
    assert data["failure_count"] == 3 and data["failures_hidden"] == 2
    assert [f["external_id"] for f in data["failures"]] == [world["mine"].external_id]
    assert data["failures"][0]["predicted_label"] == "pos" and data["failures"][0]["expected_label"] == "neg"
    # the counts per (predicted, expected) hold only what the annotator may see
    assert data["confusion"] == [{"model_version": "v1", "predicted_label": "pos", "expected_label": "neg", "n": 1}]
    for who in ("reviewer", "manager"):
        full = client_for(world[who]).get(f"/api/bugs/{bug.pk}").json()
        assert full["failures_hidden"] == 0 and len(full["failures"]) == 3
        assert sum(c["n"] for c in full["confusion"]) == 3


def test_bug_page_hides_them_too(client, world):
    client.force_login(world["annotator"])
    page = client.get(f"/bugs/{world['bug'].pk}").content.decode()
    assert world["mine"].external_id in page
    assert world["resolved"].external_id not in page and world["open"].external_id not in page
    assert "2 failures hidden" in page
    client.force_login(world["reviewer"])
    page = client.get(f"/bugs/{world['bug'].pk}").content.decode()
    assert world["resolved"].external_id in page and world["open"].external_id in page
    assert "hidden" not in page.split('id="failures"')[1].split("</section>")[0]


def test_a_reopened_item_hides_its_labels_again(world):
    """Closed means never servable to them again: an item they labeled stays closed, one decided
    without them opens up for them the moment it goes back to the queue."""
    Item.objects.filter(pk=world["resolved"].pk).update(status="open")
    data = client_for(world["annotator"]).get(f"/api/bugs/{world['bug'].pk}").json()
    assert data["failures_hidden"] == 2


def test_dataset_rows_and_delta_and_evaluations_hide_labels(world, client):
    project, manager = world["project"], world["manager"]
    dataset = dataset_create(project=project, actor=manager, name="Hard")
    dataset_version_curate(
        dataset=dataset, actor=manager, add_external_ids=[world["mine"].external_id, world["resolved"].external_id]
    )
    evaluation = evaluation_run(
        project=project,
        actor=manager,
        model_version="v9",
        dataset_ids=[dataset.pk],
        batch=predictions_parse(
            project=project,
            rows=[
                {"external_id": world["mine"].external_id, "label": "neu"},
                {"external_id": world["resolved"].external_id, "label": "neu"},
            ],
        ),
    )
    ann = client_for(world["annotator"])
    rows = {
        r["external_id"]: r["label"] for r in ann.get(f"/api/datasets/{dataset.pk}/versions/1/items").json()["results"]
    }
    assert rows == {world["mine"].external_id: "neg", world["resolved"].external_id: None}
    lines = ann.get(f"/api/datasets/{dataset.pk}/versions/1/items?format=jsonl")
    streamed = {r["external_id"]: r["label"] for r in map(json.loads, b"".join(lines.streaming_content).splitlines())}
    assert streamed == rows
    delta = ann.get(f"/api/datasets/{dataset.pk}/versions/1/delta").json()
    assert {r["external_id"]: r["label"] for r in delta["added"]} == rows
    full = client_for(world["reviewer"]).get(f"/api/datasets/{dataset.pk}/versions/1/items").json()["results"]
    assert {r["label"] for r in full} == {"neg"}
    client.force_login(world["annotator"])
    page = client.get(f"/evaluations/{evaluation.pk}/datasets/{dataset.pk}/failures").content.decode()
    assert world["mine"].external_id in page and world["resolved"].external_id not in page
    assert "1 item of this version is not listed" in page


def test_evaluation_regression_items_keep_only_visible_items(world):
    project, manager = world["project"], world["manager"]
    dataset = dataset_create(project=project, actor=manager, name="Regressions")
    ids = [world["mine"].external_id, world["resolved"].external_id]
    dataset_version_curate(dataset=dataset, actor=manager, add_external_ids=ids)
    evaluation = evaluation_run(
        project=project,
        actor=manager,
        model_version="v2",
        dataset_ids=[dataset.pk],
        batch=predictions_parse(project=project, rows=[{"external_id": e, "label": "pos"} for e in ids]),
    )
    # items the previous model got right and this one wrong (only bug-filed members count: set here)
    EvaluationResult.objects.filter(evaluation=evaluation).update(regression_items=ids)
    full = client_for(manager).get(f"/api/evaluations/{evaluation.pk}").json()["results"][0]
    assert full["regression_items"] == ids
    for url in (f"/api/evaluations/{evaluation.pk}", f"/api/evaluations?project={project.pk}"):
        data = client_for(world["annotator"]).get(url).json()
        result = (data if isinstance(data, dict) else data[0])["results"][0]
        assert result["regression_items"] == [world["mine"].external_id]


# --- adding items through a bug report ------------------------------------------------------
def _report(client, project, failures):
    return client.post(
        "/api/bugs",
        {"project": project.pk, "title": "Wrong team", "kind": "user_report", "failures": failures},
        format="json",
    )


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER])
def test_only_managers_add_items_through_bug_failures(project, role):
    member = add_member(project, role=role)
    items_before, bugs_before = Item.objects.count(), Bug.objects.count()
    res = _report(client_for(member), project, [{"payload": {"text": "new one"}}, {"payload": {"text": "another"}}])
    assert res.status_code == 403, res.json()
    err = res.json()["error"]
    assert (
        err["code"] == "forbidden" and "manager role" in err["message"] and set(err["fields"]["failures"]) == {"0", "1"}
    )
    assert (Item.objects.count(), Bug.objects.count(), FailureExample.objects.count()) == (items_before, bugs_before, 0)
    # naming an existing item (with or without its payload) adds nothing, so it stays open to them
    existing = ingest_items(project, 1)[0]
    ok = _report(client_for(member), project, [{"external_id": existing.external_id, "payload": {"text": "as seen"}}])
    assert ok.status_code == 201 and Item.objects.count() == items_before + 1


def test_managers_and_staff_add_items_through_bug_failures(user, project):
    staff = UserFactory(is_staff=True)
    for who, text in ((user, "from the manager"), (staff, "from staff")):
        res = _report(client_for(who), project, [{"payload": {"text": text}}])
        assert res.status_code in (200, 201), res.json()
    assert Item.objects.filter(project=project, payload__text__startswith="from ").count() == 2
