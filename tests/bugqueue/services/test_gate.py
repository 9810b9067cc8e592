import json

import pytest

from bugqueue.models import Dataset, Evaluation, EvaluationResult
from bugqueue.services.gate import gate_check, model_promote
from bugqueue.services.prediction_files import evaluation_from_file
from common.errors import Conflict, NotFound, ValidationFailed
from labeling.models import ModelStageChange, ModelVersion, Stage
from labeling.services.registry import model_register
from tests.bugqueue.factories import label, make_items

pytestmark = pytest.mark.django_db


def gate_dataset(project, name="regressions", version=8, gate=True):
    return Dataset.objects.create(project=project, name=name, gate=gate, latest_version=version)


def result(project, model, dataset, *, version=None, passed=True, baseline="", reasons=()):
    """A stored evaluation result of `model` on `dataset` (as the evaluation engine writes it)."""
    evaluation = Evaluation.objects.create(project=project, model_version=model, passed=passed)
    EvaluationResult.objects.create(
        evaluation=evaluation,
        dataset=dataset,
        dataset_version=dataset.latest_version if version is None else version,
        n=10,
        n_missing=0,
        accuracy=0.9 if passed else 0.5,
        passed=passed,
        reasons=list(reasons),
        baseline_model=baseline,
    )
    return evaluation


def in_production(project, user, version):
    model_register(project=project, actor=user, version=version)
    return model_promote(project=project, actor=user, version=version, stage=Stage.PRODUCTION, override_reason="seed")


def test_promotion_to_production_is_refused_without_an_evaluation_on_the_latest_version(project, user):
    ds = gate_dataset(project, version=8)
    model_register(project=project, actor=user, version="v5")
    result(project, "v5", ds, version=7)  # an older version does not count
    with pytest.raises(Conflict) as exc:
        model_promote(project=project, actor=user, version="v5", stage="production")
    assert exc.value.code == "gate_failed" and "regressions" in exc.value.message
    (failing,) = exc.value.fields["datasets"]
    assert failing["dataset"] == ds.pk and failing["version"] == 8
    assert failing["reasons"] == ["not evaluated on v8"]
    assert ModelVersion.objects.get(version="v5").stage == Stage.CANDIDATE
    assert ModelStageChange.objects.filter(model__version="v5").count() == 1  # registration only


def test_a_failing_evaluation_is_refused_with_its_reasons(project, user):
    ds = gate_dataset(project)
    other = gate_dataset(project, name="billing")
    model_register(project=project, actor=user, version="v5")
    result(project, "v5", ds, passed=False, reasons=["accuracy 0.5 is below 0.8"])
    result(project, "v5", other)
    with pytest.raises(Conflict) as exc:
        model_promote(project=project, actor=user, version="v5", stage="canary")
    assert [d["name"] for d in exc.value.fields["datasets"]] == ["regressions"]
    assert exc.value.fields["datasets"][0]["reasons"] == ["failed: accuracy 0.5 is below 0.8"]
    assert "billing" not in exc.value.message


def test_the_newest_evaluation_decides_not_an_older_passing_one(project, user):
    ds = gate_dataset(project)
    model_register(project=project, actor=user, version="v5")
    result(project, "v5", ds, passed=True)
    result(project, "v5", ds, passed=False, reasons=["3 items regressed"])
    with pytest.raises(Conflict):
        model_promote(project=project, actor=user, version="v5", stage="production")


def test_an_evaluation_against_an_old_baseline_is_refused(project, user):
    ds = gate_dataset(project, version=8)
    in_production(project, user, "v2")
    model_register(project=project, actor=user, version="v5")
    result(project, "v5", ds, baseline="v2")
    in_production(project, user, "v3")
    with pytest.raises(Conflict) as exc:
        model_promote(project=project, actor=user, version="v5", stage="production")
    assert exc.value.fields["datasets"][0]["reasons"] == ["compared with v2 but production is now v3: re-evaluate"]
    # re-evaluated against v3: allowed
    ok = result(project, "v5", ds, baseline="v3")
    change = model_promote(project=project, actor=user, version="v5", stage="production")
    assert change.evaluation_id == ok.pk and change.override_reason == ""


def test_passing_promotion_records_the_evaluation_and_retires_production(project, user):
    ds = gate_dataset(project)
    other = gate_dataset(project, name="billing", version=2)
    Dataset.objects.create(project=project, name="not gating", gate=False, latest_version=3)
    Dataset.objects.create(project=project, name="empty gate", gate=True, latest_version=0)
    in_production(project, user, "v2")
    model_register(project=project, actor=user, version="v5")
    first = result(project, "v5", ds, baseline="v2")
    second = result(project, "v5", other, baseline="v2")
    change = model_promote(project=project, actor=user, version="v5", stage="production", note="weekly release")
    assert change.from_stage == Stage.CANDIDATE and change.to_stage == Stage.PRODUCTION
    assert change.actor == user and change.evaluation_id == max(first.pk, second.pk)
    assert change.note == "weekly release" and change.override_reason == ""
    assert [(g["name"], g["passed"], g["evaluation"]) for g in change.gate] == [
        ("billing", True, second.pk),
        ("regressions", True, first.pk),
    ]
    old = ModelVersion.objects.get(version="v2")
    assert old.stage == Stage.RETIRED
    retired = ModelStageChange.objects.filter(model=old).order_by("-id").first()
    assert (retired.from_stage, retired.to_stage, retired.actor) == (Stage.PRODUCTION, Stage.RETIRED, user)


def test_override_with_a_reason_is_recorded_with_the_gate_answer(project, user):
    ds = gate_dataset(project)
    model_register(project=project, actor=user, version="v5")
    result(project, "v5", ds, passed=False, reasons=["accuracy 0.5 is below 0.8"])
    with pytest.raises(Conflict):
        model_promote(project=project, actor=user, version="v5", stage="production", override_reason="   ")
    change = model_promote(
        project=project, actor=user, version="v5", stage="production", override_reason="hotfix for outage"
    )
    assert change.override_reason == "hotfix for outage" and change.evaluation_id is None
    assert change.gate[0]["passed"] is False and change.gate[0]["reasons"] == ["failed: accuracy 0.5 is below 0.8"]
    assert ModelVersion.objects.get(version="v5").stage == Stage.PRODUCTION


def test_moves_outside_canary_and_production_need_no_gate(project, user):
    gate_dataset(project)
    model_register(project=project, actor=user, version="v5")
    shadow = model_promote(project=project, actor=user, version="v5", stage="shadow")
    assert shadow.gate == [] and shadow.evaluation_id is None
    model_promote(project=project, actor=user, version="v5", stage="production", override_reason="first model")
    demoted = model_promote(project=project, actor=user, version="v5", stage="retired")
    assert (demoted.from_stage, demoted.to_stage) == (Stage.PRODUCTION, Stage.RETIRED)


def test_same_stage_unknown_stage_and_unregistered_version(project, user):
    model_register(project=project, actor=user, version="v5")
    with pytest.raises(ValidationFailed) as exc:
        model_promote(project=project, actor=user, version="v5", stage="candidate")
    assert exc.value.code == "same_stage"
    with pytest.raises(ValidationFailed):
        model_promote(project=project, actor=user, version="v5", stage="live")
    with pytest.raises(NotFound):
        model_promote(project=project, actor=user, version="v9", stage="shadow")


def test_gate_check_with_no_gate_datasets_allows(project, user):
    model = model_register(project=project, actor=user, version="v5")
    assert gate_check(project=project, model=model) == []


def test_gate_baseline_is_the_last_promoted_model_when_none_is_in_production(project, user):
    ds = gate_dataset(project)
    model_register(project=project, actor=user, version="v1")
    model_promote(project=project, actor=user, version="v1", stage="shadow")
    model = model_register(project=project, actor=user, version="v5")
    result(project, "v5", ds, baseline="")
    (entry,) = gate_check(project=project, model=model)
    assert entry["passed"] is False
    assert entry["reasons"] == ["compared with no baseline but the baseline is now v1 (shadow): re-evaluate"]
    result(project, "v5", ds, baseline="v1")
    assert gate_check(project=project, model=model)[0]["passed"] is True


# --- prediction files --------------------------------------------------------------------------
@pytest.fixture
def labeled(project):
    from bugqueue.services.datasets import Addition, dataset_version_create

    items = make_items(project, 4, prefix="pf")
    label(items, "pos")
    ds = Dataset.objects.create(project=project, name="files", gate=True, min_accuracy=0.7)
    dataset_version_create(dataset_id=ds.pk, add=[Addition(i.pk, "pos") for i in items])
    return items, ds


def test_a_jsonl_file_is_evaluated_and_registers_the_version(project, user, labeled):
    items, ds = labeled
    data = "\n".join(f'{{"external_id": "{i.external_id}", "label": "pos"}}' for i in items).encode()
    evaluation = evaluation_from_file(
        project=project, actor=user, model_version="2024-10-01.3", name="p.jsonl", data=data
    )
    (r,) = evaluation.results.all()
    assert r.accuracy == 1.0 and r.passed
    assert ModelVersion.objects.get(project=project, version="2024-10-01.3").stage == Stage.CANDIDATE


def test_a_csv_file_with_probabilities_is_evaluated(project, user, labeled):
    items, ds = labeled
    from labeling.selectors.projects import project_label_keys

    probs = json.dumps({k: (1.0 if k == "pos" else 0.0) for k in project_label_keys(project=project)})
    lines = ["external_id,label,probabilities"]
    for k, i in enumerate(items):
        cell = '"' + probs.replace('"', '""') + '"' if k == 0 else ""
        lines.append(f"{i.external_id},{'pos' if k else 'neg'},{cell}")
    evaluation = evaluation_from_file(
        project=project, actor=user, model_version="v7", name="preds.csv", data="\n".join(lines).encode()
    )
    (r,) = evaluation.results.all()
    assert r.accuracy == pytest.approx(0.75)


def test_bad_rows_are_reported_with_their_lines_and_nothing_is_stored(project, user, labeled):
    items, ds = labeled
    data = "\n".join(
        [
            f'{{"external_id": "{items[0].external_id}", "label": "pos"}}',
            "",
            "{not json",
            f'{{"external_id": "{items[1].external_id}", "label": "nope"}}',
        ]
    ).encode()
    with pytest.raises(ValidationFailed) as exc:
        evaluation_from_file(project=project, actor=user, model_version="v8", name="p.jsonl", data=data)
    assert exc.value.fields["rows"][0]["line"] == 3
    data = "\n".join(
        [f'{{"external_id": "{items[0].external_id}", "label": "pos"}}', "", '{"external_id": "x", "label": "nope"}']
    ).encode()
    with pytest.raises(ValidationFailed) as exc:
        evaluation_from_file(project=project, actor=user, model_version="v8", name="p.jsonl", data=data)
    assert exc.value.fields["rows"][0]["line"] == 3 and "nope" in exc.value.fields["rows"][0]["message"]
    with pytest.raises(ValidationFailed) as exc:
        evaluation_from_file(project=project, actor=user, model_version="v8", name="p.csv", data=b"id,label\n1,pos\n")
    assert "external_id" in exc.value.message
    assert not Evaluation.objects.filter(model_version="v8").exists()
    assert not ModelVersion.objects.filter(version="v8").exists()


def test_a_failed_evaluation_against_an_old_baseline_says_both(project, user):
    ds = gate_dataset(project, version=3)
    model = model_register(project=project, actor=user, version="v5")
    result(project, "v5", ds, passed=False, reasons=["accuracy 0.5 is below 0.8"])
    in_production(project, user, "v1")
    (entry,) = gate_check(project=project, model=model)
    assert entry["reasons"] == [
        "failed: accuracy 0.5 is below 0.8",
        "compared with no baseline but production is now v1: re-evaluate",
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_promotions_are_serialised_and_the_gate_sees_the_new_baseline(postgres_tx):
    """Four candidates that passed against no baseline race to production: one wins; the others
    meet the gate after it and are refused (their evaluations now compare with an old baseline),
    never a unique-constraint error. With override reasons every one goes through, each retiring
    the one before."""
    from tests.bugqueue.factories import run_threads
    from tests.labeling.factories import ProjectFactory, UserFactory

    user = UserFactory()
    project = ProjectFactory(creator=user)
    ds = gate_dataset(project)
    versions = ["a1", "a2", "a3", "a4"]
    for v in versions:
        model_register(project=project, actor=user, version=v)
        result(project, v, ds)
    refused = []

    def attempt(i):
        try:
            model_promote(project=project, actor=user, version=versions[i], stage="production")
        except Conflict as exc:
            refused.append(exc.code)

    run_threads(len(versions), attempt)
    stages = dict(ModelVersion.objects.filter(project=project).values_list("version", "stage"))
    assert sorted(stages.values()) == ["candidate", "candidate", "candidate", "production"]
    assert refused == ["gate_failed"] * 3

    run_threads(
        3,
        lambda i: model_promote(
            project=project,
            actor=user,
            version=[v for v in versions if stages[v] == "candidate"][i],
            stage="production",
            override_reason="drill",
        ),
    )
    final = sorted(ModelVersion.objects.filter(project=project).values_list("stage", flat=True))
    assert final == ["production", "retired", "retired", "retired"]
    assert ModelStageChange.objects.filter(model__project=project, to_stage="retired").count() == 3
