import json

import pytest
from sklearn.metrics import accuracy_score, f1_score

from bugqueue.models import Dataset, DatasetMember, DatasetVersion
from labeling.models import Role
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
