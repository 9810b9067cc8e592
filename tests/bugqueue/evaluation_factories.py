"""An evaluation written row by row (the page reads what the evaluation engine stores): a gate
dataset of six support tickets from two bugs, a production baseline that gets every item right, and
a candidate that re-breaks four of them (three of bug A, one of bug B), with slices by channel."""

from dataclasses import dataclass

from bugqueue.models import Bug, Dataset, Evaluation, EvaluationPrediction, EvaluationResult
from bugqueue.services.datasets import Addition, dataset_version_create
from labeling.services.ingestion import items_ingest
from tests.bugqueue.factories import failing_bug

TRUTH = ["billing", "billing", "billing", "account", "account", "shipping"]
CANDIDATE = ["account", "account", "account", "billing", "account", "shipping"]
CHANNEL = ["email", "email", "email", "chat", "chat", "chat"]


@dataclass
class Built:
    dataset: Dataset
    items: list
    bug_a: Bug
    bug_b: Bug
    baseline: Evaluation
    candidate: Evaluation
    result: EvaluationResult


def build_evaluation(project, *, actor=None, prefix="ev") -> Built:
    items_ingest(
        project=project,
        rows=[
            {"external_id": f"{prefix}{i}", "payload": {"text": f"ticket {i}", "channel": CHANNEL[i]}}
            for i in range(len(TRUTH))
        ],
    )
    from labeling.models import Item

    items = list(Item.objects.filter(project=project, external_id__startswith=prefix).order_by("id"))
    bug_a = failing_bug(project, title=f"Refunds read as account questions {prefix}", failures=[])
    bug_b = failing_bug(project, title=f"Password resets billed {prefix}", failures=[])
    owner = [bug_a, bug_a, bug_a, bug_b, None, None]
    dataset = Dataset.objects.create(project=project, name=f"gate {prefix}", gate=True, min_accuracy=0.8)
    dataset_version_create(
        dataset_id=dataset.pk,
        add=[Addition(it.pk, TRUTH[i], owner[i].pk if owner[i] else None) for i, it in enumerate(items)],
    )

    def evaluation(model_version, answers, **kw):
        ev = Evaluation.objects.create(
            project=project, model_version=model_version, n_predictions=len(answers), created_by=actor, **kw
        )
        EvaluationPrediction.objects.bulk_create(
            EvaluationPrediction(evaluation=ev, item=it, label=answers[i]) for i, it in enumerate(items)
        )
        return ev

    baseline = evaluation("m-prod", TRUTH, source="stored", passed=True)
    base_result = EvaluationResult.objects.create(
        evaluation=baseline,
        dataset=dataset,
        dataset_version=1,
        n=6,
        n_missing=0,
        accuracy=1.0,
        macro_f1=1.0,
        per_class_recall={"account": 1.0, "billing": 1.0, "shipping": 1.0},
        confusion={"labels": ["account", "billing", "shipping"], "matrix": [[2, 0, 0], [0, 3, 0], [0, 0, 1]]},
        passed=True,
    )
    candidate = evaluation("m-new", CANDIDATE, passed=False)
    result = EvaluationResult.objects.create(
        evaluation=candidate,
        dataset=dataset,
        dataset_version=1,
        n=6,
        n_missing=0,
        accuracy=2 / 6,
        macro_f1=0.3,
        per_class_recall={"account": 0.5, "billing": 0.0, "shipping": 1.0},
        confusion={"labels": ["account", "billing", "shipping"], "matrix": [[1, 1, 0], [3, 0, 0], [0, 0, 1]]},
        previous=base_result,
        baseline_model="m-prod",
        regressions=4,
        regressions_by_bug={str(bug_a.pk): 3, str(bug_b.pk): 1},
        regression_items=[items[i].external_id for i in range(4)],
        slices=[
            {
                "field": "channel",
                "value": "chat",
                "n": 3,
                "accuracy": 2 / 3,
                "macro_f1": 0.5,
                "baseline_accuracy": 1.0,
                "delta": -1 / 3,
                "dropped": False,
            },
            {
                "field": "channel",
                "value": "email",
                "n": 3,
                "accuracy": 0.0,
                "macro_f1": 0.0,
                "baseline_accuracy": 1.0,
                "delta": -1.0,
                "dropped": True,
            },
        ],
        passed=False,
        reasons=[
            "accuracy 33.3% is below the minimum 80.0%",
            "4 items of resolved bugs that m-prod got right are now wrong",
        ],
        warnings=["slice channel=email dropped by 100.0 points"],
    )
    return Built(dataset, items, bug_a, bug_b, baseline, candidate, result)
