"""Factories for quality tests: annotations written directly (not through the queue's service), the
item state the annotation service would leave behind, and simulated crowds with known true labels."""

from dataclasses import dataclass

import numpy as np
from django.db.models import F
from django.utils import timezone

from labeling.models import Annotation, GroundTruthMethod, Item, ItemStatus, Prediction, Role
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.ingestion import probability_vector
from labeling.services.projects import LabelSpec
from tests.factories import ProjectFactory, UserFactory, add_member


def labels_for(k: int) -> list[LabelSpec]:
    return [LabelSpec(f"c{j}", f"Class {j}", f"Guideline of class {j}.", str(j + 1) if j < 9 else "") for j in range(k)]


def annotators(project, n: int, role=Role.ANNOTATOR) -> list:
    return [add_member(project, UserFactory(), role) for _ in range(n)]


def settle(items: list[Item]) -> None:
    """What the annotation service does when an item has all the annotations it needs: unanimous ->
    ground truth (method unanimous), else disputed."""
    decisions, disputed = [], []
    by_item = {}
    for item_id, annotator_id, label in Annotation.objects.filter(item__in=items).values_list("item_id", "annotator_id", "label"):
        by_item.setdefault(item_id, []).append((annotator_id, label))
    state = dict((pk, (status, required)) for pk, status, required in
                 Item.objects.filter(pk__in=[i.pk for i in items]).values_list("pk", "status", "required_annotations"))
    for item in items:
        status, required = state[item.pk]
        pairs = by_item.get(item.pk, [])
        if status != ItemStatus.OPEN or len(pairs) < required:
            continue
        chosen = {label for _, label in pairs}
        if len(chosen) == 1:
            decisions.append(Decision(item.pk, chosen.pop(), GroundTruthMethod.UNANIMOUS, annotators=tuple(a for a, _ in pairs)))
        else:
            disputed.append(item.pk)
    if decisions:
        ground_truth_set_many(project_id=items[0].project_id, decisions=decisions)
    if disputed:
        Item.objects.filter(pk__in=disputed).update(status=ItemStatus.DISPUTED)


def annotate(item: Item, pairs, *, seconds: float = 10.0, settle_item: bool = True) -> Item:
    """Add annotations [(user, label), ...] to an item, keeping its counter right."""
    Annotation.objects.bulk_create([Annotation(project_id=item.project_id, item=item, annotator=u, label=lab, seconds_spent=seconds) for u, lab in pairs])
    Item.objects.filter(pk=item.pk).update(annotation_count=F("annotation_count") + len(pairs))
    if settle_item:
        settle([item])
    item.refresh_from_db()
    return item


@dataclass
class Crowd:
    true: np.ndarray          # N true class indices
    labels: np.ndarray        # N × M float, NaN = not labeled
    pred_probs: np.ndarray    # N × K, a production model's probabilities
    accuracies: np.ndarray    # M
    order: np.ndarray         # N × per_item: which annotators label each item, in the order they come

    def first(self, k: int) -> np.ndarray:
        """The labels matrix with only each item's first k annotators."""
        out = np.full(self.labels.shape, np.nan)
        rows = np.repeat(np.arange(len(self.true)), k)
        cols = self.order[:, :k].ravel()
        out[rows, cols] = self.labels[rows, cols]
        return out


def simulate_crowd(*, n_items: int, accuracies, n_classes: int, per_item: int, seed: int = 0,
                   model_accuracy: float = 0.7) -> Crowd:
    """Items with known true labels; each labeled by `per_item` distinct annotators drawn at random;
    an annotator is right with its accuracy, else picks one of the other classes uniformly. The
    'production model' puts a noisy bump on the true class (right ~model_accuracy of the time)."""
    rng = np.random.default_rng(seed)
    acc = np.asarray(accuracies, dtype=float)
    m = len(acc)
    true = rng.integers(0, n_classes, n_items)
    labels = np.full((n_items, m), np.nan)
    chosen = np.argsort(rng.random((n_items, m)), axis=1)[:, :per_item]
    rows = np.repeat(np.arange(n_items), per_item)
    cols = chosen.ravel()
    right = rng.random(len(rows)) < acc[cols]
    wrong = (true[rows] + rng.integers(1, n_classes, len(rows))) % n_classes
    labels[rows, cols] = np.where(right, true[rows], wrong)
    logits = rng.normal(0.0, 1.0, (n_items, n_classes))
    target = np.where(rng.random(n_items) < model_accuracy, true, rng.integers(0, n_classes, n_items))
    logits[np.arange(n_items), target] += 2.5
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return Crowd(true=true, labels=labels, pred_probs=probs, accuracies=acc, order=chosen)


def load_crowd(project, users, crowd: Crowd, *, with_predictions: bool = True, payloads=None, settle_items: bool = True,
               first: int | None = None, with_vectors: bool = True):
    """Write a simulated crowd into the database: items (+ predictions), annotations (each item's
    `first` annotators only, if given), item state."""
    keys = list(project.labels.order_by("position", "id").values_list("key", flat=True))
    n = len(crowd.true)
    items = Item.objects.bulk_create([
        Item(project=project, external_id=f"sim-{i}", payload=(payloads[i] if payloads else {"text": ""}),
             required_annotations=project.annotations_per_item)
        for i in range(n)
    ])
    if with_predictions:
        now = timezone.now()
        probs = [{keys[j]: float(crowd.pred_probs[i, j]) for j in range(len(keys))} for i in range(n)]
        Prediction.objects.bulk_create([
            Prediction(item=it, model_version="sim-v1", label=keys[int(np.argmax(crowd.pred_probs[i]))],
                       probabilities=probs[i], predicted_at=now,
                       vector=probability_vector(probs[i], keys) if with_vectors else None)  # as ingestion writes it
            for i, it in enumerate(items)
        ])
    matrix = crowd.labels if first is None else crowd.first(first)
    rows, cols = np.nonzero(~np.isnan(matrix))
    Annotation.objects.bulk_create([
        Annotation(project_id=items[r].project_id, item=items[r], annotator=users[c], label=keys[int(matrix[r, c])], seconds_spent=5.0 + (r % 7))
        for r, c in zip(rows.tolist(), cols.tolist())
    ], batch_size=2000)
    counts = np.bincount(rows, minlength=n)
    for value in set(counts.tolist()):
        Item.objects.filter(pk__in=[items[i].pk for i in np.nonzero(counts == value)[0]]).update(annotation_count=value)
    if settle_items:
        settle(items)
    return items


def crowd_project(*, k: int = 3, annotations_per_item: int = 3, max_annotations_per_item: int = 5,
                  accept_threshold: float = 0.7):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, labels=labels_for(k), annotations_per_item=annotations_per_item,
                             max_annotations_per_item=max_annotations_per_item, accept_threshold=accept_threshold)
    return project, manager


def adaptive_overlap(project, users, crowd: Crowd, *, start: int = 3, max_rounds: int = 10) -> dict:
    """Loupe's adaptive overlap on a simulated crowd, through the real quality service: each item
    starts with `start` annotations; after each quality run, every item the run reopened gets its
    next annotator's label; until no item is reopened. Returns the final labels' accuracy (ground
    truth where set, else the last run's consensus) and the number of annotations used."""
    from unittest import mock

    from labeling.models import GroundTruth, QualityItemResult, ReopenRequest
    from labeling.services import quality as quality_service

    keys = list(project.labels.order_by("position", "id").values_list("key", flat=True))
    items = load_crowd(project, users, crowd, first=start)
    row_of = {it.pk: i for i, it in enumerate(items)}
    given = np.full(len(items), start)
    runs = []
    for _ in range(max_rounds):
        with mock.patch.object(quality_service, "_enqueue"):
            run = quality_service.quality_run_request(project_id=project.pk)
        run = quality_service.quality_run_execute(run_id=run.pk)
        assert run.status == "done", run.error
        runs.append(run)
        reopened = list(QualityItemResult.objects.filter(run=run, outcome="reopened").values_list("item_id", flat=True))
        if not reopened:
            break
        # An annotator reaches each requested item: the queue opens it for one more annotation
        # (what labeling.services.queue._open_requested does at a claim).
        requested = ReopenRequest.objects.filter(item_id__in=reopened)
        Item.objects.filter(pk__in=requested.values("item_id")).update(
            status="open", required_annotations=F("required_annotations") + 1)
        requested.delete()
        new = []
        for item_id in reopened:
            i = row_of[item_id]
            j = int(crowd.order[i, given[i]])
            new.append(Annotation(project_id=project.pk, item_id=item_id, annotator=users[j], label=keys[int(crowd.labels[i, j])], seconds_spent=6.0))
            given[i] += 1
        Annotation.objects.bulk_create(new)
        Item.objects.filter(pk__in=reopened).update(annotation_count=F("annotation_count") + 1)
        settle([items[row_of[pk]] for pk in reopened])
    truth = dict(GroundTruth.objects.filter(item__project=project).values_list("item_id", "label"))
    last = dict(QualityItemResult.objects.filter(run=runs[-1]).values_list("item_id", "consensus_label"))
    final = np.array([keys.index(truth.get(it.pk) or last[it.pk]) for it in items])
    return {"accuracy": float((final == crowd.true).mean()), "annotations": int(given.sum()), "runs": len(runs),
            "reviewed_or_open": int(Item.objects.filter(project=project).exclude(status="resolved").count())}
