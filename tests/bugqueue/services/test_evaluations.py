import numpy as np
import pytest

from bugqueue.models import Dataset, EvaluationPrediction, EvaluationResult
from bugqueue.services.datasets import Addition, dataset_version_create
from bugqueue.services.evaluations import evaluation_rows_from_jsonl, evaluation_run, predictions_parse
from common.errors import TooLarge, ValidationFailed
from tests.bugqueue.factories import make_items

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
    assert stored == {items[0].pk: "pos", items[1].pk: "pos", items[2].pk: "pos", items[3].pk: "neg"}
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
