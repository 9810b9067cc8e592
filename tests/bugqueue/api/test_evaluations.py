import json

import pytest
from sklearn.metrics import accuracy_score, f1_score

from bugqueue.models import Dataset, DatasetMember, DatasetVersion, Evaluation
from labeling.models import Project, Role
from labeling.selectors.registry import model_get
from labeling.services.registry import model_stage_write
from tests.bugqueue.factories import failing_bug, label, make_items
from tests.conftest import client_for
from tests.labeling.factories import add_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(user, project):
    items = make_items(project, 10, prefix="e")
    truth = ["pos", "pos", "neg", "neg", "neu", "neu", "pos", "neg", "neu", "pos"]
    for it, t in zip(items, truth):
        label([it], t)
    ds = Dataset.objects.create(project=project, name="gate", min_accuracy=0.6)
    bug = failing_bug(project, failures=[])
    DatasetMember.objects.bulk_create(
        [
            DatasetMember(dataset=ds, item=it, label=t, added_in=1, bug=bug if i < 3 else None)
            for i, (it, t) in enumerate(zip(items, truth))
        ]
    )
    DatasetVersion.objects.create(dataset=ds, number=1, reason="manual", added=10, size=10)
    ds.latest_version = 1
    ds.save()
    return items, truth, ds


def promote(project, version, user, stage="production"):
    model_stage_write(model=model_get(project=project, version=version), to_stage=stage, actor=user)


def evaluate(client, project, model, preds, **extra):
    return client.post(
        "/api/evaluations",
        {
            "project": project.id,
            "model_version": model,
            "predictions": [{"external_id": e, "label": lab} for e, lab in preds],
            **extra,
        },
        format="json",
    )


def test_metrics_match_scikit_learn_and_gate_passes(user, project, setup):
    items, truth, ds = setup
    guess = ["pos", "pos", "neg", "pos", "neu", "neg", "pos", "neg", "neu", "pos"]
    res = evaluate(client_for(user), project, "m1", [(i.external_id, g) for i, g in zip(items, guess)])
    assert res.status_code == 201, res.json()
    body = res.json()
    (r,) = body["results"]
    assert r["accuracy"] == pytest.approx(accuracy_score(truth, guess))
    assert r["macro_f1"] == pytest.approx(f1_score(truth, guess, average="macro"))
    assert r["per_class_recall"]["neg"] == pytest.approx(2 / 3)
    assert r["confusion"]["labels"] == ["pos", "neg", "neu"] and sum(map(sum, r["confusion"]["matrix"])) == 10
    assert r["passed"] and body["passed"] and r["previous"] is None and r["n_missing"] == 0


def test_regression_on_a_bug_item_fails_the_gate_and_is_compared(user, project, setup):
    items, truth, ds = setup
    c = client_for(user)
    evaluate(c, project, "m1", [(i.external_id, t) for i, t in zip(items, truth)])
    promote(project, "m1", user)
    worse = list(truth)
    worse[0] = "neg"  # item 0 belongs to a resolved bug and m1 got it right
    res = evaluate(c, project, "m2", [(i.external_id, t) for i, t in zip(items, worse)]).json()
    (r,) = res["results"]
    assert (
        r["accuracy"] == pytest.approx(0.9)
        and r["regressions"] == 1
        and r["regression_items"] == [items[0].external_id]
    )
    assert not r["passed"] and not res["passed"]
    assert r["previous"]["model_version"] == "m1" and r["previous"]["accuracy_change"] == pytest.approx(-0.1)
    listed = c.get(f"/api/evaluations?project={project.id}&model_version=m2").json()
    assert [e["model_version"] for e in listed] == ["m2"]
    assert c.get(f"/api/evaluations/{res['id']}").json()["results"][0]["regressions"] == 1


def test_missing_predictions_and_low_accuracy_fail(user, project, setup):
    items, truth, ds = setup
    res = evaluate(client_for(user), project, "m3", [(items[0].external_id, "neu"), ("unknown-ext", "pos")]).json()
    (r,) = res["results"]
    assert r["n_missing"] == 9 and r["accuracy"] == 0 and not r["passed"] and res["n_unknown"] == 1
    assert any("no prediction" in reason for reason in r["reasons"])


def test_jsonl_and_bad_input(user, project, setup):
    items, truth, ds = setup
    c = client_for(user)
    body = "\n".join(json.dumps({"external_id": i.external_id, "label": t}) for i, t in zip(items, truth))
    res = c.post(
        f"/api/evaluations?project={project.id}&model_version=m4&datasets={ds.id}",
        body,
        content_type="application/x-ndjson",
    )
    assert res.status_code == 201 and res.json()["passed"]
    bad = evaluate(c, project, "m5", [(items[0].external_id, "nope")])
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["rows"][0]["index"] == 0
    assert evaluate(c, project, "", [(items[0].external_id, "pos")]).status_code == 400
    assert evaluate(c, project, "m6", [(items[0].external_id, "pos")], datasets=[999999]).status_code == 400
    annotator = client_for(add_member(project, role=Role.ANNOTATOR))
    assert evaluate(annotator, project, "m7", [(items[0].external_id, "pos")]).status_code == 403


# --- baseline, slices and re-evaluation from stored predictions (PostgreSQL) --------------------
def test_a_new_version_keeps_the_baseline_and_the_output_names_it(user, project, setup):
    items, truth, ds = setup
    Project.objects.filter(pk=project.pk).update(slice_fields=["channel"])
    c = client_for(user)
    assert evaluate(c, project, "m1", [(i.external_id, t) for i, t in zip(items, truth)]).status_code == 201
    promote(project, "m1", user)
    extra = make_items(project, 1, prefix="x")[0]
    label([extra], "neg")
    DatasetMember.objects.create(dataset=ds, item=extra, label="neg", added_in=2)
    DatasetVersion.objects.create(dataset=ds, number=2, reason="manual", added=1, size=11)
    Dataset.objects.filter(pk=ds.pk).update(latest_version=2)
    worse = list(truth)
    worse[0], worse[1] = "neg", "neg"  # items 0 and 1 belong to the bug, m1 got them right
    preds = [(i.external_id, t) for i, t in zip(items, worse)] + [(extra.external_id, "neg")]
    res = evaluate(c, project, "m2", preds)
    assert res.status_code == 201, res.json()
    body = res.json()
    (r,) = body["results"]
    bug_id = str(DatasetMember.objects.filter(dataset=ds, bug__isnull=False).values_list("bug_id", flat=True)[0])
    assert body["source"] == "upload" and r["dataset_version"] == 2
    assert (r["baseline_model"], r["baseline_missing"], r["regressions"]) == ("m1", 0, 2)
    assert r["regressions_by_bug"] == {bug_id: 2} and not r["passed"]
    # m1 had no result on version 2 (and no prediction for the new item): Loupe evaluated it there
    assert r["previous"]["model_version"] == "m1" and r["previous"]["source"] == "stored"
    stored = c.get(f"/api/evaluations/{r['previous']['evaluation']}").json()
    assert stored["source"] == "stored" and stored["results"][0]["n_missing"] == 1
    slices = {(s["field"], s["value"]): s for s in r["slices"]}
    assert set(slices) == {("channel", "(none)"), ("bug", bug_id), ("bug", "(none)")}
    assert set(slices[("bug", bug_id)]) == {
        "field",
        "value",
        "n",
        "accuracy",
        "macro_f1",
        "baseline_accuracy",
        "delta",
        "dropped",
    }
    assert slices[("bug", bug_id)]["n"] == 3 and slices[("bug", bug_id)]["accuracy"] == pytest.approx(1 / 3)
    listed = c.get(f"/api/evaluations?project={project.id}").json()
    assert {(e["model_version"], e["source"]) for e in listed} == {("m1", "upload"), ("m1", "stored"), ("m2", "upload")}


def test_rerun_evaluates_a_model_from_its_stored_predictions(user, project, setup):
    items, truth, ds = setup
    c = client_for(user)
    guess = list(truth)
    guess[5] = "pos"
    assert evaluate(c, project, "m1", [(i.external_id, g) for i, g in zip(items, guess)]).status_code == 201
    res = c.post("/api/evaluations/rerun", {"project": project.id, "model_version": "m1"}, format="json")
    assert res.status_code == 201, res.json()
    body = res.json()
    assert (body["model_version"], body["source"], body["n_predictions"]) == ("m1", "stored", 10)
    assert body["results"][0]["accuracy"] == pytest.approx(0.9) and body["results"][0]["dataset"] == ds.id
    res = c.post(
        "/api/evaluations/rerun", {"project": project.id, "model_version": "m1", "datasets": [ds.id]}, format="json"
    )
    assert res.status_code == 201
    missing = c.post("/api/evaluations/rerun", {"project": project.id, "model_version": "nope"}, format="json")
    assert missing.status_code == 409 and missing.json()["error"]["code"] == "no_stored_predictions"
    bad = c.post(
        "/api/evaluations/rerun", {"project": project.id, "model_version": "m1", "datasets": [999999]}, format="json"
    )
    assert bad.status_code == 400
    unknown_field = c.post(
        "/api/evaluations/rerun", {"project": project.id, "model_version": "m1", "x": 1}, format="json"
    )
    assert unknown_field.status_code == 400
    for role in (Role.ANNOTATOR, Role.REVIEWER):
        other = client_for(add_member(project, role=role))
        res = other.post("/api/evaluations/rerun", {"project": project.id, "model_version": "m1"}, format="json")
        assert res.status_code == 403
    assert Evaluation.objects.filter(project=project, source="stored").count() == 2
