"""Evaluate a model version on the latest version of a project's datasets and gate it.

The baseline is the project's model in production, else the one promoted last (never a model that
was only ever a candidate, never the evaluated model itself), compared on the same dataset version:
its newest result on that version, or, when it has none, a result Loupe computes there from its
stored predictions (what its evaluations kept, newest first, then its production predictions),
saved as an evaluation of source "stored". So a new dataset version never removes the baseline.

A dataset passes when accuracy meets its min_accuracy, every item has a prediction, and no item of a
bug that the baseline got right is now wrong (a regression, counted per bug). Slices (the project's
slice fields and the bug that added the item) are reported with their change against the baseline;
a slice that dropped is a warning, not a failure."""

import numpy as np
from django.db import transaction

from bugqueue.models import BugProjectSettings, Dataset, Evaluation, EvaluationResult
from bugqueue.services.evaluations import data, metrics
from bugqueue.services.evaluations.parse import PredictionBatch
from common.errors import Conflict, ValidationFailed
from labeling.models import Item
from labeling.selectors.projects import project_label_keys
from labeling.selectors.registry import baseline_model
from labeling.services.registry import model_ensure

REGRESSION_SAMPLE = 100
BUG_SLICE = "bug"
DEFAULT_SLICE_DROP = 0.05


def _clean_model_version(model_version) -> str:
    if not isinstance(model_version, str) or not model_version.strip() or len(model_version) > 128:
        raise ValidationFailed(
            "model_version must be a non-empty string (at most 128 characters).",
            fields={"model_version": ["Required."]},
        )
    return model_version.strip()


def _datasets(project, dataset_ids) -> list:
    datasets = Dataset.objects.filter(project=project).order_by("pk")
    if dataset_ids:
        dataset_ids = sorted({int(i) for i in dataset_ids})
        datasets = datasets.filter(pk__in=dataset_ids)
        missing = sorted(set(dataset_ids) - set(datasets.values_list("pk", flat=True)))
        if missing:
            raise ValidationFailed(
                f"Unknown datasets for this project: {missing}.", fields={"datasets": [str(m) for m in missing]}
            )
    return [d for d in datasets if d.latest_version > 0]


def _slice_fields(project) -> list:
    fields = [f for f in (project.slice_fields or []) if isinstance(f, str) and f and f != BUG_SLICE]
    return list(dict.fromkeys(fields))


def _drop_threshold(project) -> float:
    value = BugProjectSettings.objects.filter(project=project).values_list("slice_drop_threshold", flat=True).first()
    return DEFAULT_SLICE_DROP if value is None else float(value)


def _model_evaluations(project, model_version, exclude=None) -> list:
    qs = Evaluation.objects.filter(project=project, model_version=model_version)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return list(qs.values_list("pk", flat=True))


class _Run:
    """What every dataset of one evaluation shares: the project's labels, slice fields, threshold,
    the baseline model and its results, and the baseline's stored evaluation once one is needed."""

    def __init__(self, *, project, actor, evaluation):
        self.project, self.actor, self.evaluation = project, actor, evaluation
        self.keys = project_label_keys(project=project)
        self.fields = _slice_fields(project)
        self.threshold = _drop_threshold(project)
        self.baseline = baseline_model(project=project, exclude_version=evaluation.model_version)
        self.baseline_evaluations = (
            _model_evaluations(project, self.baseline.version) if self.baseline is not None else []
        )
        self.stored_baseline = None  # Evaluation(source="stored") of the baseline, made when needed
        self.stored_items, self.stored_codes = [], []

    def baseline_results(self, datasets) -> dict:
        """The baseline's newest result on each dataset's latest version: {dataset id: result}."""
        if self.baseline is None or not datasets:
            return {}
        found = {}
        for r in (
            EvaluationResult.objects.filter(
                evaluation__project=self.project,
                evaluation__model_version=self.baseline.version,
                dataset_id__in=[d.pk for d in datasets],
            )
            .select_related("evaluation")
            .order_by("-evaluation_id")
        ):
            version = next(d.latest_version for d in datasets if d.pk == r.dataset_id)
            if r.dataset_version == version:
                found.setdefault(r.dataset_id, r)
        return found

    def slices(self, members, codes_by_field, pred, base) -> list:
        scored = metrics.Scored(members.truth, pred, base, len(self.keys))
        rows = []
        for field, (codes, names) in codes_by_field.items():
            rows.extend(metrics.slice_rows(field, codes, names, scored, self.threshold))
        return rows

    def result(self, *, evaluation, dataset, number, members, codes_by_field, pred, base, previous) -> EvaluationResult:
        """An unsaved result of `pred` on the version, compared with `base` (the baseline's codes,
        None without a baseline) whose own result is `previous`."""
        keys = self.keys
        s = metrics.scores(members.truth, pred, len(keys))
        n_missing = int((pred < 0).sum())
        reasons, warnings = [], []
        if dataset.min_accuracy is not None and (s["accuracy"] is None or s["accuracy"] < dataset.min_accuracy):
            shown = s["accuracy"] if s["accuracy"] is None else round(s["accuracy"], 4)
            reasons.append(f"accuracy {shown} is below {dataset.min_accuracy}")
        if n_missing:
            reasons.append(f"{n_missing} items have no prediction")
        baseline_name, by_bug, sample, baseline_missing, n_regressions = "", {}, [], 0, 0
        if base is not None:
            baseline_name = self.baseline.version
            bug_items = members.bugs >= 0
            baseline_missing = int((bug_items & (base < 0)).sum())
            broken = metrics.regressions(members.truth, pred, base, members.bugs)
            n_regressions = int(broken.sum())
            if n_regressions:
                bug_ids, counts = np.unique(members.bugs[broken], return_counts=True)
                by_bug = {str(b): int(c) for b, c in zip(bug_ids.tolist(), counts.tolist())}
                worst = sorted(by_bug.items(), key=lambda kv: (-kv[1], int(kv[0])))
                per_bug = ", ".join(f"bug {b}: {c}" for b, c in worst[:5]) + (", …" if len(worst) > 5 else "")
                reasons.append(
                    f"{n_regressions} items of resolved bugs that the baseline {baseline_name} got right "
                    f"are now wrong ({per_bug})"
                )
                wrong_ids = np.sort(members.item_ids[broken])[:REGRESSION_SAMPLE].tolist()
                sample = list(
                    Item.objects.filter(pk__in=wrong_ids).order_by("pk").values_list("external_id", flat=True)
                )
            if baseline_missing:
                warnings.append(
                    f"the baseline {baseline_name} has no prediction for {baseline_missing} items of resolved bugs: "
                    "their regressions cannot be counted"
                )
        elif self.baseline is not None and evaluation is self.evaluation:
            warnings.append(f"the baseline {self.baseline.version} has no stored prediction on this version")
        slices = self.slices(members, codes_by_field, pred, base)
        for r in slices:
            if r["dropped"]:
                warnings.append(
                    f"slice {r['field']}={r['value']}: accuracy {r['accuracy']:.4f} against "
                    f"{r['baseline_accuracy']:.4f} for the baseline {baseline_name} "
                    f"({r['delta']:+.4f}, n={r['n']})"
                )
        return EvaluationResult(
            evaluation=evaluation,
            dataset=dataset,
            dataset_version=number,
            n=len(members.item_ids),
            n_missing=n_missing,
            accuracy=s["accuracy"],
            macro_f1=s["macro_f1"],
            per_class_recall=dict(zip(keys, s["recall"])),
            confusion={"labels": keys, "matrix": s["matrix"]},
            previous=previous,
            baseline_model=baseline_name,
            baseline_missing=baseline_missing,
            regressions=n_regressions,
            regressions_by_bug=by_bug,
            regression_items=sample,
            slices=slices,
            passed=not reasons,
            reasons=reasons,
            warnings=warnings,
        )

    def baseline_on(self, *, dataset, number, members, codes_by_field, existing):
        """(the baseline's codes on the version's members, its result there), computing and saving
        that result from its stored predictions when it has none; (None, None) without a baseline
        or when it has no stored prediction on any member."""
        if self.baseline is None:
            return None, None
        common = {"dataset_id": dataset.pk, "number": number, "keys": self.keys, "item_ids": members.item_ids}
        if existing is not None:
            base = data.stored_codes(
                model_version=self.baseline.version, evaluation_ids=[existing.evaluation_id], production=False, **common
            )
            return base, existing
        base = data.stored_codes(
            model_version=self.baseline.version, evaluation_ids=self.baseline_evaluations, **common
        )
        if not (base >= 0).any():
            return None, None
        if self.stored_baseline is None:
            self.stored_baseline = Evaluation.objects.create(
                project=self.project, model_version=self.baseline.version, source="stored", created_by=self.actor
            )
        result = self.result(
            evaluation=self.stored_baseline,
            dataset=dataset,
            number=number,
            members=members,
            codes_by_field=codes_by_field,
            pred=base,
            base=None,
            previous=None,
        )
        result.save()
        has = base >= 0
        self.stored_items.append(members.item_ids[has])
        self.stored_codes.append(base[has])
        return base, result

    def finish_stored_baseline(self):
        if self.stored_baseline is None:
            return
        kept = _store_unique(self.stored_baseline, self.stored_items, self.stored_codes, self.keys)
        _close(self.stored_baseline, n_predictions=kept)


def _store_unique(evaluation, item_chunks, code_chunks, keys) -> int:
    """Keep the predictions gathered over several datasets (an item in two datasets once)."""
    if not item_chunks:
        return 0
    items, first = np.unique(np.concatenate(item_chunks), return_index=True)
    codes = np.concatenate(code_chunks)[first]
    data.predictions_store(evaluation_id=evaluation.pk, item_ids=items, codes=codes, keys=keys)
    return len(items)


def _close(evaluation, **fields):
    results = list(EvaluationResult.objects.filter(evaluation=evaluation).values_list("passed", flat=True))
    evaluation.passed = bool(results) and all(results)
    for name, value in fields.items():
        setattr(evaluation, name, value)
    evaluation.save(update_fields=["passed", *fields])


def _slice_codes(members, fields) -> dict:
    """{field: (codes, names)} for the slice fields and the bug slice; a value's name is read from
    one item that holds it (one query for every field's named values)."""
    out = {f: metrics.slice_codes(members.values[f]) for f in fields}
    rows = {name for _, names in out.values() for name in names if isinstance(name, int)}
    item_of = {r: int(members.item_ids[r]) for r in rows}
    texts = data.payload_values(item_ids=set(item_of.values()), fields=fields)
    for field, (codes, names) in out.items():
        named = [n if not isinstance(n, int) else texts.get(item_of[n], {}).get(field) for n in names]
        out[field] = (codes, [metrics.NONE if n is None else n for n in named])
    out[BUG_SLICE] = metrics.id_slice_codes(members.bugs)
    return out


def _evaluate(run: _Run, datasets, predictions_of) -> list:
    """Results of run.evaluation on each dataset's latest version; `predictions_of(dataset, number,
    members)` gives the evaluated model's codes aligned with the members."""
    existing = run.baseline_results(datasets)
    results = []
    for dataset in datasets:
        number = dataset.latest_version
        members = data.members_read(dataset_id=dataset.pk, number=number, keys=run.keys, fields=run.fields)
        codes_by_field = _slice_codes(members, run.fields)
        pred = predictions_of(dataset, number, members)
        base, previous = run.baseline_on(
            dataset=dataset,
            number=number,
            members=members,
            codes_by_field=codes_by_field,
            existing=existing.get(dataset.pk),
        )
        results.append(
            run.result(
                evaluation=run.evaluation,
                dataset=dataset,
                number=number,
                members=members,
                codes_by_field=codes_by_field,
                pred=pred,
                base=base,
                previous=previous,
            )
        )
    EvaluationResult.objects.bulk_create(results)
    run.finish_stored_baseline()
    return results


@transaction.atomic
def evaluation_run(*, project, actor, model_version: str, batch: PredictionBatch, dataset_ids=None) -> Evaluation:
    """Evaluate uploaded predictions on the latest version of the project's datasets (or of
    `dataset_ids`) against the baseline, and register the model version. Every prediction whose
    external_id names an item of the project is kept, so that later dataset versions can be
    evaluated from them (evaluation_rerun_stored, or as a baseline)."""
    model_version = _clean_model_version(model_version)
    datasets = _datasets(project, dataset_ids)
    model_ensure(project=project, version=model_version, actor=actor)
    positions, item_ids = data.items_resolve(project_id=project.pk, external_ids=batch.external_ids)
    order = np.argsort(item_ids, kind="stable")
    sorted_ids, sorted_codes = item_ids[order], batch.labels[positions[order]].astype(np.int16)
    evaluation = Evaluation.objects.create(
        project=project,
        model_version=model_version,
        created_by=actor,
        n_predictions=len(batch.external_ids),
        n_unknown=len(batch.external_ids) - len(item_ids),
        source="upload",
    )
    run = _Run(project=project, actor=actor, evaluation=evaluation)
    _evaluate(run, datasets, lambda dataset, number, members: data.lookup(sorted_ids, sorted_codes, members.item_ids))
    data.predictions_store(evaluation_id=evaluation.pk, item_ids=sorted_ids, codes=sorted_codes, keys=batch.keys)
    _close(evaluation)
    return evaluation


@transaction.atomic
def evaluation_rerun_stored(*, project, model_version: str, actor, dataset_ids=None) -> Evaluation:
    """Evaluate a model on the latest version of the project's datasets (or of `dataset_ids`) from
    its stored predictions (what its evaluations kept, newest first, then its production
    predictions), against the current baseline: how a model is re-checked after a dataset gets a
    new version, without uploading its predictions again. Conflict when it has no stored prediction."""
    model_version = _clean_model_version(model_version)
    datasets = _datasets(project, dataset_ids)
    own = _model_evaluations(project, model_version)
    if not data.has_stored_predictions(project_id=project.pk, model_version=model_version, evaluation_ids=own):
        raise Conflict(
            f"Model version {model_version!r} has no stored predictions in this project: evaluate it by "
            "uploading its predictions.",
            code="no_stored_predictions",
            fields={"model_version": ["No stored predictions."]},
        )
    if not datasets:
        raise ValidationFailed(
            "No dataset with a version to evaluate on.", fields={"datasets": ["No dataset has a version yet."]}
        )
    model_ensure(project=project, version=model_version, actor=actor)
    evaluation = Evaluation.objects.create(
        project=project, model_version=model_version, created_by=actor, source="stored"
    )
    run = _Run(project=project, actor=actor, evaluation=evaluation)
    chunks_items, chunks_codes = [], []

    def predictions_of(dataset, number, members):
        codes = data.stored_codes(
            model_version=model_version,
            evaluation_ids=own,
            dataset_id=dataset.pk,
            number=number,
            keys=run.keys,
            item_ids=members.item_ids,
        )
        has = codes >= 0
        chunks_items.append(members.item_ids[has])
        chunks_codes.append(codes[has])
        return codes

    _evaluate(run, datasets, predictions_of)
    kept = _store_unique(evaluation, chunks_items, chunks_codes, run.keys)
    _close(evaluation, n_predictions=kept)
    return evaluation
