"""The promotion gate: a model version moves to canary or production only when its newest evaluation
on the latest version of every gate dataset passed, compared with the model that is the baseline now
(the one in production, else the last promoted one). An evaluation compared with an older baseline
does not count: the candidate must be re-evaluated against the model it would replace. A manager may
override a refused promotion with a reason, which the history row keeps beside the gate's answer."""

from django.db import transaction

from bugqueue.models import Dataset, EvaluationResult
from common.errors import Conflict, NotFound, ValidationFailed
from common.events import emit
from labeling.models import GATED_STAGES, ModelStageChange, ModelVersion, Stage
from labeling.selectors.registry import baseline_model, model_get
from labeling.services.registry import model_stage_write

MAX_OVERRIDE = 2000


def _gate_datasets(project):
    return list(Dataset.objects.filter(project=project, gate=True, latest_version__gt=0).order_by("name", "id"))


def gate_check(*, project, model: ModelVersion) -> list[dict]:
    """The gate's answer for `model`, one entry per gate dataset (name order):
    {dataset, name, version, evaluation, passed, reasons}. `evaluation` is the id of the evaluation
    that decided the entry (null when there is none on that version)."""
    baseline = baseline_model(project=project, exclude_version=model.version)
    current = baseline.version if baseline is not None else ""
    datasets = _gate_datasets(project)
    newest: dict[int, list[EvaluationResult]] = {}
    if datasets:
        results = (
            EvaluationResult.objects.filter(
                evaluation__project=project,
                evaluation__model_version=model.version,
                dataset__in=datasets,
            )
            .only("id", "evaluation_id", "dataset_id", "dataset_version", "passed", "reasons", "baseline_model")
            .order_by("-evaluation_id", "-id")
        )
        latest = {d.pk: d.latest_version for d in datasets}
        for r in results:
            if r.dataset_version == latest[r.dataset_id]:
                newest.setdefault(r.dataset_id, []).append(r)
    answer = []
    for d in datasets:
        entry = {"dataset": d.pk, "name": d.name, "version": d.latest_version, "evaluation": None}
        results = newest.get(d.pk, [])
        matching = [r for r in results if (r.baseline_model or "") == current]
        if matching:
            r = matching[0]
            entry["evaluation"] = r.evaluation_id
            entry["passed"] = bool(r.passed)
            entry["reasons"] = [] if r.passed else [f"failed: {'; '.join(r.reasons) or 'did not pass'}"]
        elif results:
            r = results[0]
            entry["evaluation"] = r.evaluation_id
            entry["passed"] = False
            entry["reasons"] = [_stale_reason(r.baseline_model, baseline)]
            if not r.passed:
                entry["reasons"].insert(0, f"failed: {'; '.join(r.reasons) or 'did not pass'}")
        else:
            entry["passed"] = False
            entry["reasons"] = [f"not evaluated on v{d.latest_version}"]
        answer.append(entry)
    return answer


def _stale_reason(compared_with: str, baseline) -> str:
    before = f"compared with {compared_with}" if compared_with else "compared with no baseline"
    if baseline is None:
        now = "there is no baseline now"
    elif baseline.stage == Stage.PRODUCTION:
        now = f"production is now {baseline.version}"
    else:
        now = f"the baseline is now {baseline.version} ({baseline.stage})"
    return f"{before} but {now}: re-evaluate"


def gate_failed_message(failing: list[dict]) -> str:
    return "The gate refuses: " + "; ".join(f"{d['name']} v{d['version']}: {', '.join(d['reasons'])}" for d in failing)


def _announce_gate_failed(*, project_id: int, version: str, stage: str, failing: list[dict], override_reason=""):
    failures = [{k: d[k] for k in ("dataset", "name", "version", "evaluation", "reasons")} for d in failing]
    evaluations = [d["evaluation"] for d in failing if d["evaluation"] is not None]
    emit(
        project_id=project_id,
        type="evaluation.gate_failed",
        subject=(
            f"Gate {'overridden' if override_reason else 'refused'}: {version} to {stage} "
            f"({', '.join(d['name'] for d in failing)})"
        ),
        data={
            "model_version": version,
            "stage": stage,
            "evaluation_id": max(evaluations) if evaluations else None,
            "failures": failures,
            "overridden": bool(override_reason),
            "override_reason": override_reason,
        },
        path=f"/projects/{project_id}/models",
        key=f"model:{version}",
    )


def model_promote(
    *, project, actor, version: str, stage: str, override_reason: str = "", note: str = ""
) -> ModelStageChange:
    """Move model `version` to `stage` and record who, when, from, to, the evaluation that allowed it
    and the gate's answer. Promotion to canary or production passes the gate or carries a manager's
    override_reason (the caller checks the manager role); any other change needs no gate. Conflict
    `gate_failed` (409) names the failing datasets; the same stage is a 400, an unknown version a 404.

    A failing gate announces evaluation.gate_failed: when it refuses (sent once the refused
    transaction is rolled back) and when a manager overrides it (sent after commit)."""
    try:
        return _model_promote(
            project=project, actor=actor, version=version, stage=stage, override_reason=override_reason, note=note
        )
    except Conflict as exc:
        if exc.code == "gate_failed":
            _announce_gate_failed(
                project_id=project.pk, version=version, stage=stage, failing=(exc.fields or {}).get("datasets", [])
            )
        raise


@transaction.atomic
def _model_promote(*, project, actor, version: str, stage: str, override_reason: str, note: str) -> ModelStageChange:
    if stage not in Stage.values:
        raise ValidationFailed(
            f"stage must be one of {', '.join(Stage.values)}.", fields={"stage": [f"Unknown stage {stage!r}."]}
        )
    override_reason = (override_reason or "").strip()
    if len(override_reason) > MAX_OVERRIDE:
        raise ValidationFailed(
            f"override_reason holds at most {MAX_OVERRIDE} characters.",
            fields={"override_reason": [f"At most {MAX_OVERRIDE} characters."]},
        )
    # Promotions of one project are serialised: the baseline the gate reads cannot move under it.
    list(ModelVersion.objects.select_for_update().filter(project=project).order_by("pk").values_list("pk", flat=True))
    model = model_get(project=project, version=version) if isinstance(version, str) and "\x00" not in version else None
    if model is None:
        raise NotFound(f"Model version {version!r} is not registered in this project.", code="model_not_found")
    if model.stage == stage:
        raise ValidationFailed(
            f"Model version {model.version!r} is already in {stage}.",
            code="same_stage",
            fields={"stage": [f"Already {stage}."]},
        )
    gate, evaluation_id, used_override = [], None, ""
    if stage in GATED_STAGES:
        gate = gate_check(project=project, model=model)
        failing = [d for d in gate if not d["passed"]]
        if failing and not override_reason:
            raise Conflict(
                gate_failed_message(failing)
                + ". Evaluate the model on those versions, or override with a reason (managers).",
                code="gate_failed",
                fields={
                    "datasets": [
                        {k: d[k] for k in ("dataset", "name", "version", "evaluation", "reasons")} for d in failing
                    ]
                },
            )
        if failing:
            used_override = override_reason
            _announce_gate_failed(
                project_id=project.pk,
                version=model.version,
                stage=stage,
                failing=failing,
                override_reason=used_override,
            )
        allowed_by = [d["evaluation"] for d in gate if d["passed"] and d["evaluation"] is not None]
        evaluation_id = max(allowed_by) if allowed_by else None
    return model_stage_write(
        model=model,
        to_stage=stage,
        actor=actor,
        evaluation_id=evaluation_id,
        gate=gate,
        override_reason=used_override,
        note=(note or "").strip(),
    )
