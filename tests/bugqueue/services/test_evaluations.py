import numpy as np
import pytest
from sklearn.metrics import f1_score

from bugqueue.models import BugProjectSettings, Dataset, Evaluation, EvaluationPrediction, EvaluationResult
from bugqueue.services.datasets import Addition, dataset_version_create
from bugqueue.services.evaluations import (
    evaluation_rerun_stored,
    evaluation_rows_from_jsonl,
    evaluation_run,
    predictions_parse,
)
from common.errors import Conflict, TooLarge, ValidationFailed
from labeling.models import Item, ModelVersion, Project, Stage
from labeling.selectors.registry import model_get
from labeling.services.ingestion import items_ingest
from labeling.services.registry import model_stage_write
from tests.bugqueue.factories import failing_bug, make_items

pytestmark = pytest.mark.django_db


def test_predictions_parse_gives_codes_and_lists_every_bad_row(project):
    batch = predictions_parse(
        project=project, rows=[{"external_id": "a", "label": "neg"}, {"external_id": 7, "label": "pos"}]
    )
    assert batch.external_ids == ["a", "7"] and batch.keys == ["pos", "neg", "neu"]
    assert batch.labels.dtype == np.int16 and batch.labels.tolist() == [1, 0]
    with pytest.raises(ValidationFailed) as exc:
        predictions_parse(
            project=project,
            rows=[
                {"external_id": "a", "label": "pos"},
                {"external_id": "a", "label": "pos"},
                "row",
                {"external_id": "b"},
                {"external_id": "c", "label": "pos", "probabilities": {"pos": 0.5, "neg": 0.2, "neu": 0.2}},
            ],
        )
    assert [r["index"] for r in exc.value.fields["rows"]] == [1, 2, 3, 4]
    with pytest.raises(ValidationFailed):
        predictions_parse(project=project, rows=[])


def test_evaluation_run_stores_results_and_the_predictions_of_dataset_items(user, project):
    items = make_items(project, 5, prefix="ev")
    ds = Dataset.objects.create(project=project, name="core", min_accuracy=0.7)
    dataset_version_create(dataset_id=ds.pk, add=[Addition(i.pk, "pos") for i in items[:4]])
    empty = Dataset.objects.create(project=project, name="empty")  # no version yet: not evaluated
    rows = [{"external_id": i.external_id, "label": lab} for i, lab in zip(items, ["pos", "pos", "pos", "neg", "neg"])]
    rows.append({"external_id": "not-an-item", "label": "pos"})
    evaluation = evaluation_run(
        project=project, actor=user, model_version=" m1 ", batch=predictions_parse(project=project, rows=rows)
    )
    assert (evaluation.model_version, evaluation.n_predictions, evaluation.n_unknown) == ("m1", 6, 1)
    (result,) = EvaluationResult.objects.filter(evaluation=evaluation)
    assert result.dataset_id == ds.pk and result.dataset_version == 1 and result.n == 4
    assert result.accuracy == pytest.approx(0.75) and result.passed and evaluation.passed
    assert not EvaluationResult.objects.filter(dataset=empty).exists()
    stored = dict(EvaluationPrediction.objects.filter(evaluation=evaluation).values_list("item_id", "label"))
    # every prediction of a project item is kept (items[4] is in no dataset yet), the unknown one is not
    assert stored == {
        items[0].pk: "pos",
        items[1].pk: "pos",
        items[2].pk: "pos",
        items[3].pk: "neg",
        items[4].pk: "neg",
    }
    with pytest.raises(ValidationFailed):
        evaluation_run(
            project=project,
            actor=user,
            model_version="m2",
            dataset_ids=[ds.pk + 1000],
            batch=predictions_parse(project=project, rows=rows),
        )


def test_jsonl_rows_are_read_line_by_line_within_the_limit():
    lines = [b'{"external_id": "a", "label": "pos"}\n', b"\n", b'{"external_id": "b", "label": "neg"}\n']
    assert [r["external_id"] for r in evaluation_rows_from_jsonl(iter(lines), max_bytes=1000)] == ["a", "b"]
    with pytest.raises(ValidationFailed):
        list(evaluation_rows_from_jsonl(iter([b"{not json}\n"]), max_bytes=1000))
    with pytest.raises(TooLarge):
        list(evaluation_rows_from_jsonl(iter(lines), max_bytes=40))


# --- the baseline, regressions per bug, slices (PostgreSQL) -------------------------------------
KEYS = ["pos", "neg", "neu"]
N = 200  # items 0-99 came from bug A, 100-165 from bug B, 166-199 from no bug


def _truth(i):
    return KEYS[i % 3]


def _wrong(i):
    return KEYS[(i + 1) % 3]


def _bug_of(i, a, b):
    return a.pk if i < 100 else b.pk if i < 166 else None


def _payload(i):
    payload = {"text": f"ticket {i}", "channel": "email" if 166 <= i < 186 else "web", "city": f"c{i % 60}"}
    if i % 10:
        payload["tier"] = "gold" if i % 2 else 1  # a number shows as its JSON text
    return payload


@pytest.fixture
def gate_world(db, user, project):
    """A gate dataset (version 1: N items, 166 of two resolved bugs), one later item `late` with a
    production prediction of model v2, and v2 evaluated on version 1, right everywhere."""
    items_ingest(
        project=project,
        rows=[{"external_id": f"g{i}", "payload": _payload(i)} for i in range(N)]
        + [
            {
                "external_id": "late",
                "payload": {"text": "late", "channel": "web"},
                "prediction": {"model_version": "v2", "label": "neg", "predicted_at": "2026-12-01T00:00:00Z"},
            }
        ],
    )
    items = list(Item.objects.filter(project=project, external_id__startswith="g").order_by("id"))
    late = Item.objects.get(project=project, external_id="late")
    bug_a, bug_b = failing_bug(project, "a"), failing_bug(project, "b")
    ds = Dataset.objects.create(project=project, name="gate", min_accuracy=0.5, gate=True)
    dataset_version_create(
        dataset_id=ds.pk, add=[Addition(it.pk, _truth(i), _bug_of(i, bug_a, bug_b)) for i, it in enumerate(items)]
    )
    v2 = evaluate(project, user, "v2", {i: _truth(i) for i in range(N)})
    assert v2.passed and v2.results.get().baseline_model == ""  # nothing promoted yet: no baseline
    return {"items": items, "late": late, "a": bug_a, "b": bug_b, "ds": ds, "v2": v2}


def evaluate(project, user, model, answers, extra=(), **kw):
    rows = [{"external_id": f"g{i}", "label": lab} for i, lab in answers.items()] + list(extra)
    return evaluation_run(
        project=project, actor=user, model_version=model, batch=predictions_parse(project=project, rows=rows), **kw
    )


def promote(project, version, user, stage=Stage.PRODUCTION):
    model_stage_write(model=model_get(project=project, version=version), to_stage=stage, actor=user)


def breaking(n_a, n_b, extra_wrong=()):
    """Answers right everywhere but on the first n_a items of bug A, n_b of bug B and `extra_wrong`."""
    wrong = set(range(n_a)) | set(range(100, 100 + n_b)) | set(extra_wrong)
    return {i: _wrong(i) if i in wrong else _truth(i) for i in range(N)}


def test_a_new_version_keeps_the_production_baseline_evaluated_from_its_stored_predictions(user, project, gate_world):
    w = gate_world
    promote(project, "v2", user)
    dataset_version_create(dataset_id=w["ds"].pk, add=[Addition(w["late"].pk, "neg")])  # version 2: one item more
    v5 = evaluate(project, user, "v5", breaking(30, 8), extra=[{"external_id": "late", "label": "neg"}])
    r = v5.results.get()
    assert (r.dataset_version, r.n, r.n_missing) == (2, N + 1, 0)
    assert r.accuracy == pytest.approx((N + 1 - 38) / (N + 1))  # above min_accuracy: the regressions fail it
    assert r.regressions == 38 and r.regressions_by_bug == {str(w["a"].pk): 30, str(w["b"].pk): 8}
    assert r.baseline_model == "v2" and r.baseline_missing == 0
    expected = sorted([f"g{i}" for i in range(30)] + [f"g{i}" for i in range(100, 108)])
    assert sorted(r.regression_items) == expected
    assert not r.passed and not v5.passed
    assert any("38 items of resolved bugs that the baseline v2 got right" in x for x in r.reasons)
    # v2 was never evaluated on version 2: Loupe evaluated it there from what its evaluation kept,
    # and the production prediction of the item added since
    base = r.previous
    assert (base.evaluation.model_version, base.evaluation.source, base.dataset_version) == ("v2", "stored", 2)
    assert (base.n, base.n_missing, base.accuracy, base.passed) == (N + 1, 0, 1.0, True)
    stored = dict(EvaluationPrediction.objects.filter(evaluation=base.evaluation).values_list("item_id", "label"))
    assert len(stored) == N + 1 and stored[w["late"].pk] == "neg"
    assert ModelVersion.objects.filter(project=project, version="v5", stage=Stage.CANDIDATE).exists()
    # the next candidate reuses that result: no second stored evaluation
    v6 = evaluate(project, user, "v6", breaking(0, 2), extra=[{"external_id": "late", "label": "neg"}])
    r6 = v6.results.get()
    assert r6.previous_id == base.pk and r6.regressions_by_bug == {str(w["b"].pk): 2}
    assert Evaluation.objects.filter(project=project, source="stored").count() == 1


def test_a_failed_candidate_is_never_the_baseline(user, project, gate_world):
    w = gate_world
    bad = evaluate(project, user, "bad", breaking(100, 66))  # fails (regressions need a baseline: none yet)
    assert bad.results.get().accuracy < 0.5 and not bad.passed
    after_bad = evaluate(project, user, "next", breaking(5, 0))
    r = after_bad.results.get()
    assert (r.baseline_model, r.previous, r.regressions) == ("", None, 0)  # no promotion: no baseline
    promote(project, "v2", user)
    r = evaluate(project, user, "next2", breaking(5, 0)).results.get()
    assert r.baseline_model == "v2" and r.previous.evaluation_id == w["v2"].pk and r.regressions == 5
    # evaluating the production model itself compares it with nothing else promoted
    assert evaluate(project, user, "v2", breaking(0, 0)).results.get().baseline_model == ""
    # a model promoted later to another stage does not replace the one in production
    promote(project, "next", user, stage=Stage.SHADOW)
    r = evaluate(project, user, "next3", breaking(0, 0)).results.get()
    assert r.baseline_model == "v2"


def test_slices_flag_a_drop_while_the_dataset_passes_with_hand_computed_figures(user, project, gate_world):
    w = gate_world
    Project.objects.filter(pk=project.pk).update(slice_fields=["channel", "tier", "city"])
    BugProjectSettings.objects.create(project=project, slice_drop_threshold=0.1)
    project.refresh_from_db()
    promote(project, "v2", user)
    email_wrong = [166, 167, 168, 169, 170]  # 5 of the 20 email items, none from a bug
    answers = breaking(0, 0, extra_wrong=email_wrong + [190])
    r = evaluate(project, user, "v7", answers).results.get()
    assert r.passed and r.regressions == 0 and r.accuracy == pytest.approx(194 / 200)
    by = {(s["field"], s["value"]): s for s in r.slices}
    email = by[("channel", "email")]
    truth = [_truth(i) for i in range(166, 186)]
    got = [answers[i] for i in range(166, 186)]
    # hand computation: per class F1 = 2 tp / (true count + predicted count), averaged over classes present
    f1s = []
    for k in KEYS:
        tp = sum(t == g == k for t, g in zip(truth, got))
        denom = truth.count(k) + got.count(k)
        if denom:
            f1s.append(2 * tp / denom)
    assert email["n"] == 20 and email["accuracy"] == pytest.approx(15 / 20)
    assert email["macro_f1"] == pytest.approx(sum(f1s) / len(f1s))
    assert email["macro_f1"] == pytest.approx(f1_score(truth, got, average="macro"))
    assert email["baseline_accuracy"] == 1.0 and email["delta"] == pytest.approx(-0.25) and email["dropped"]
    web = by[("channel", "web")]
    assert (web["n"], web["accuracy"], web["delta"], web["dropped"]) == (
        180,
        pytest.approx(179 / 180),
        pytest.approx(-1 / 180),
        False,
    )
    # the built-in "bug" slice: the bug that added the item, "(none)" for the others
    assert by[("bug", str(w["a"].pk))]["n"] == 100 and by[("bug", str(w["b"].pk))]["n"] == 66
    none = by[("bug", "(none)")]
    assert none["n"] == 34 and none["accuracy"] == pytest.approx(28 / 34) and none["dropped"]
    # missing payload keys are "(none)"; JSON numbers show as their text
    assert by[("tier", "(none)")]["n"] == 20 and by[("tier", "gold")]["n"] == 100 and by[("tier", "1")]["n"] == 80
    # at most 50 values of a field, the rest as "(other)"
    cities = [s for s in r.slices if s["field"] == "city"]
    assert len(cities) == 51 and cities[-1]["value"] == "(other)" and sum(s["n"] for s in cities) == 200
    dropped = {(s["field"], s["value"]) for s in r.slices if s["dropped"]}
    assert ("channel", "email") in dropped and all(by[d]["n"] >= 5 for d in dropped)
    assert any(
        x.startswith("slice channel=email: accuracy 0.7500 against 1.0000 for the baseline v2") for x in r.warnings
    )
    assert not any("slice channel=web" in x for x in r.warnings)
    # tier "(none)" (every 10th item) lost 2 of 20 (170 and 190): -0.1 is not below the project's -0.1...
    assert by[("tier", "(none)")]["delta"] == pytest.approx(-0.1) and not by[("tier", "(none)")]["dropped"]
    # ...but is below the default -0.05 (no settings row); the 1/180 drop of "web" is no warning either
    BugProjectSettings.objects.filter(project=project).delete()
    r = evaluate(project, user, "v8", answers).results.get()
    by = {(s["field"], s["value"]): s for s in r.slices}
    assert by[("tier", "(none)")]["dropped"] and not by[("channel", "web")]["dropped"]
    assert any("channel=email" in x for x in r.warnings) and any("tier=(none)" in x for x in r.warnings) and r.passed


def test_rerun_from_stored_predictions_after_a_version_change(user, project, gate_world):
    w = gate_world
    promote(project, "v2", user)
    # v5 is uploaded while the dataset is at version 1; its answer for `late` (in no dataset yet) is kept
    first = evaluate(project, user, "v5", breaking(3, 1), extra=[{"external_id": "late", "label": "pos"}])
    assert first.results.get().dataset_version == 1
    assert EvaluationPrediction.objects.filter(evaluation=first, item=w["late"]).exists()
    dataset_version_create(dataset_id=w["ds"].pk, add=[Addition(w["late"].pk, "neg")])
    again = evaluation_rerun_stored(project=project, model_version="v5", actor=user)
    r = again.results.get()
    assert (again.source, again.model_version, again.n_predictions) == ("stored", "v5", N + 1)
    assert (r.dataset_version, r.n, r.n_missing, r.baseline_model) == (2, N + 1, 0, "v2")
    assert r.regressions == 4 and r.regressions_by_bug == {str(w["a"].pk): 3, str(w["b"].pk): 1}
    assert r.accuracy == pytest.approx((N + 1 - 5) / (N + 1))  # 4 regressions and `late`
    with pytest.raises(Conflict):
        evaluation_rerun_stored(project=project, model_version="never-seen", actor=user)
    with pytest.raises(ValidationFailed):
        evaluation_rerun_stored(project=project, model_version=" ", actor=user)
