"""Factories for the labeling tests, all written through the real services where the code under
test would be: projects, users and items; queue worlds (bulk items made in SQL); quality worlds
(annotations written directly, simulated crowds with known true labels); label history for export;
synthetic production traffic with known feedback delays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F
from django.utils import timezone

from labeling.models import Annotation, GroundTruthMethod, Item, ItemStatus, Prediction, Role
from labeling.services.feedback import ground_truth_import
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.ingestion import items_ingest, probability_vector
from labeling.services.projects import LabelSpec, member_add, project_create

# --- projects, users, items ---
DEFAULT_LABELS = [
    LabelSpec("pos", "Positive", "Clearly positive sentiment.", "1"),
    LabelSpec("neg", "Negative", "Clearly negative sentiment.", "2"),
    LabelSpec("neu", "Neutral", "Neither.", "3"),
]
PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.Factory):
    """Projects are made through the service so that every invariant (manager, counter) holds."""

    class Meta:
        model = dict

    creator = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    labels = factory.LazyFunction(lambda: list(DEFAULT_LABELS))
    annotations_per_item = 3

    @classmethod
    def _create(cls, model_class, **kwargs):
        return project_create(**kwargs)

    _build = _create


def add_member(project, user=None, role=Role.ANNOTATOR):
    user = user or UserFactory()
    member_add(project=project, username=user.username, role=role)
    return user


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = None
    external_id = factory.Sequence(lambda n: f"ext-{n}")
    payload = factory.LazyAttribute(lambda o: {"text": f"text for {o.external_id}"})
    required_annotations = factory.LazyAttribute(lambda o: o.project.annotations_per_item)
    queue_order = factory.LazyAttribute(lambda o: o.project.queue_order)


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    item = None
    model_version = "v1"
    label = "pos"
    probabilities = None
    predicted_at = factory.LazyFunction(timezone.now)


# --- queue ---


def queue_project(*, items=0, overlap=3, order="fifo", lease_seconds=600, creator=None, **item_fields):
    project = ProjectFactory(creator=creator or UserFactory(), annotations_per_item=overlap)
    if order != "fifo" or lease_seconds != 600:
        type(project).objects.filter(pk=project.pk).update(queue_order=order, lease_seconds=lease_seconds)
        project.refresh_from_db()
    made = [ItemFactory(project=project, **item_fields) for _ in range(items)]
    return project, made


def annotators(project, n, role=Role.ANNOTATOR):
    return [add_member(project, UserFactory(), role) for _ in range(n)]


def bulk_items(project, n, *, prefix="b"):
    """n open items made with one INSERT ... SELECT generate_series (PostgreSQL)."""
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {Item._meta.db_table} (project_id, external_id, payload, priority, status,
                    required_annotations, annotation_count, uncertainty, first_predicted_at, reopen_rank, touchers,
                    queue_order, created_at, updated_at)
                SELECT %s, %s || g, jsonb_build_object('text', 'item ' || g), g %% 5, 'open', %s, 0,
                       (g %% 997) / 997.0, now() - (g || ' seconds')::interval, NULL, NULL, %s, now(), now()
                FROM generate_series(1, %s) g""",
            [project.pk, f"{prefix}-", project.annotations_per_item, project.queue_order, n],
        )
        cur.execute(f"ANALYZE {Item._meta.db_table}")


# --- quality ---


def labels_for(k: int) -> list[LabelSpec]:
    return [LabelSpec(f"c{j}", f"Class {j}", f"Guideline of class {j}.", str(j + 1) if j < 9 else "") for j in range(k)]


def settle(items: list[Item]) -> None:
    """What the annotation service does when an item has all the annotations it needs: unanimous ->
    ground truth (method unanimous), else disputed."""
    decisions, disputed = [], []
    by_item = {}
    for item_id, annotator_id, label in Annotation.objects.filter(item__in=items).values_list(
        "item_id", "annotator_id", "label"
    ):
        by_item.setdefault(item_id, []).append((annotator_id, label))
    state = {
        pk: (status, required)
        for pk, status, required in Item.objects.filter(pk__in=[i.pk for i in items]).values_list(
            "pk", "status", "required_annotations"
        )
    }
    for item in items:
        status, required = state[item.pk]
        pairs = by_item.get(item.pk, [])
        if status != ItemStatus.OPEN or len(pairs) < required:
            continue
        chosen = {label for _, label in pairs}
        if len(chosen) == 1:
            decisions.append(
                Decision(item.pk, chosen.pop(), GroundTruthMethod.UNANIMOUS, annotators=tuple(a for a, _ in pairs))
            )
        else:
            disputed.append(item.pk)
    if decisions:
        ground_truth_set_many(project_id=items[0].project_id, decisions=decisions)
    if disputed:
        Item.objects.filter(pk__in=disputed).update(status=ItemStatus.DISPUTED)


def annotate(item: Item, pairs, *, seconds: float = 10.0, settle_item: bool = True) -> Item:
    """Add annotations [(user, label), ...] to an item, keeping its counter right."""
    Annotation.objects.bulk_create(
        [
            Annotation(project_id=item.project_id, item=item, annotator=u, label=lab, seconds_spent=seconds)
            for u, lab in pairs
        ]
    )
    Item.objects.filter(pk=item.pk).update(annotation_count=F("annotation_count") + len(pairs))
    if settle_item:
        settle([item])
    item.refresh_from_db()
    return item


@dataclass
class Crowd:
    true: np.ndarray  # N true class indices
    labels: np.ndarray  # N × M float, NaN = not labeled
    pred_probs: np.ndarray  # N × K, a production model's probabilities
    accuracies: np.ndarray  # M
    order: np.ndarray  # N × per_item: which annotators label each item, in the order they come

    def first(self, k: int) -> np.ndarray:
        """The labels matrix with only each item's first k annotators."""
        out = np.full(self.labels.shape, np.nan)
        rows = np.repeat(np.arange(len(self.true)), k)
        cols = self.order[:, :k].ravel()
        out[rows, cols] = self.labels[rows, cols]
        return out

    def take(self, rows: np.ndarray) -> Crowd:
        """The crowd of some items only (the same annotators)."""
        return Crowd(
            true=self.true[rows],
            labels=self.labels[rows],
            pred_probs=self.pred_probs[rows],
            accuracies=self.accuracies,
            order=self.order[rows],
        )


def simulate_crowd(
    *, n_items: int, accuracies, n_classes: int, per_item: int, seed: int = 0, model_accuracy: float = 0.7
) -> Crowd:
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


def load_crowd(
    project,
    users,
    crowd: Crowd,
    *,
    with_predictions: bool = True,
    payloads=None,
    settle_items: bool = True,
    first: int | None = None,
    with_vectors: bool = True,
    prefix: str = "sim-",
):
    """Write a simulated crowd into the database: items (+ predictions), annotations (each item's
    `first` annotators only, if given), item state."""
    keys = list(project.labels.order_by("position", "id").values_list("key", flat=True))
    n = len(crowd.true)
    items = Item.objects.bulk_create(
        [
            Item(
                project=project,
                external_id=f"{prefix}{i}",
                payload=(payloads[i] if payloads else {"text": ""}),
                required_annotations=project.annotations_per_item,
            )
            for i in range(n)
        ]
    )
    if with_predictions:
        now = timezone.now()
        probs = [{keys[j]: float(crowd.pred_probs[i, j]) for j in range(len(keys))} for i in range(n)]
        Prediction.objects.bulk_create(
            [
                Prediction(
                    item=it,
                    model_version="sim-v1",
                    label=keys[int(np.argmax(crowd.pred_probs[i]))],
                    probabilities=probs[i],
                    predicted_at=now,
                    vector=probability_vector(probs[i], keys) if with_vectors else None,
                )  # as ingestion writes it
                for i, it in enumerate(items)
            ]
        )
    matrix = crowd.labels if first is None else crowd.first(first)
    rows, cols = np.nonzero(~np.isnan(matrix))
    Annotation.objects.bulk_create(
        [
            Annotation(
                project_id=items[r].project_id,
                item=items[r],
                annotator=users[c],
                label=keys[int(matrix[r, c])],
                seconds_spent=5.0 + (r % 7),
            )
            for r, c in zip(rows.tolist(), cols.tolist())
        ],
        batch_size=2000,
    )
    counts = np.bincount(rows, minlength=n)
    for value in set(counts.tolist()):
        Item.objects.filter(pk__in=[items[i].pk for i in np.nonzero(counts == value)[0]]).update(annotation_count=value)
    if settle_items:
        settle(items)
    return items


def crowd_project(
    *,
    k: int = 3,
    annotations_per_item: int = 3,
    max_annotations_per_item: int = 5,
    accept_threshold: float = 0.7,
    accept_mode: str | None = None,
    **accept_rule,
):
    """A project for simulated crowds; raw-score accept rule unless accept_mode says otherwise."""
    manager = UserFactory()
    project = ProjectFactory(
        creator=manager,
        labels=labels_for(k),
        annotations_per_item=annotations_per_item,
        max_annotations_per_item=max_annotations_per_item,
        accept_threshold=accept_threshold,
        accept_mode=accept_mode,
        **accept_rule,
    )
    return project, manager


def crowd_through_runs(
    project,
    users,
    crowd: Crowd,
    *,
    start: int = 3,
    reviewer=None,
    reviewer_accuracy: float = 1.0,
    batches: int = 1,
    seed: int = 0,
    max_rounds: int = 10,
) -> dict:
    """A simulated crowd through Loupe's real quality runs, as a project lives it: items arrive in
    `batches`; each item gets `start` annotations; after each quality run every item the run reopened
    gets its next annotator's label, and, with a `reviewer`, every item it sent to review is decided
    through the review service (right with `reviewer_accuracy`, else another class at random), so the
    accept rule is calibrated on those decisions in later runs. A batch is done when a run reopens
    nothing and (with a reviewer) nothing waits for review.

    Returns the final labels' accuracy (ground truth where set, else the last run's consensus),
    annotations used, runs, distinct items sent to review, the true error of the labels the runs
    accepted, and the last run's accept-rule record."""
    from unittest import mock

    from labeling.models import GroundTruth, QualityItemResult, ReopenRequest
    from labeling.services.quality import runs as quality_service
    from labeling.services.resolution import item_resolve

    rng = np.random.default_rng(seed)

    def audited_in(run):
        return QualityItemResult.objects.filter(run=run, audit=True).values_list("item_id", flat=True)

    keys = list(project.labels.order_by("position", "id").values_list("key", flat=True))
    k = len(keys)
    n = len(crowd.true)
    true_of, row_of, items = {}, {}, []
    given = np.full(n, start)
    runs, reviewed, per_batch = [], set(), []
    for b, rows in enumerate(np.array_split(np.arange(n), batches)):
        batch = load_crowd(project, users, crowd.take(rows), first=start, prefix=f"sim-{b}-")
        for r, it in zip(rows.tolist(), batch):
            row_of[it.pk] = r
            true_of[it.pk] = int(crowd.true[r])
        items.extend(batch)
        for _ in range(max_rounds):
            with mock.patch.object(quality_service, "_enqueue"):
                run = quality_service.quality_run_request(project_id=project.pk)
            run = quality_service.quality_run_execute(run_id=run.pk)
            assert run.status == "done", run.error
            runs.append(run)
            outcomes = QualityItemResult.objects.filter(run=run, outcome__in=["reopened", "review"])
            reopened = [i for i, o in outcomes.values_list("item_id", "outcome") if o == "reopened"]
            to_review = [i for i, o in outcomes.values_list("item_id", "outcome") if o == "review"]
            if reviewer is not None:
                per_batch.append((b, len(to_review), len(reopened), len(set(to_review) & set(audited_in(run)))))
                reviewed.update(to_review)
                for item_id in to_review:
                    t = true_of[item_id]
                    label = t if rng.random() < reviewer_accuracy else (t + int(rng.integers(1, k))) % k
                    item_resolve(item=Item(pk=item_id, project_id=project.pk), reviewer=reviewer, label=keys[label])
            if not reopened and (reviewer is None or not to_review):
                break
            if not reopened:
                continue
            # An annotator reaches each requested item: the queue opens it for one more annotation
            # (what labeling.services.queue.claim._open_requested does at a claim).
            requested = ReopenRequest.objects.filter(item_id__in=reopened)
            Item.objects.filter(pk__in=requested.values("item_id")).update(
                status="open", required_annotations=F("required_annotations") + 1
            )
            requested.delete()
            new = []
            for item_id in reopened:
                i = row_of[item_id]
                j = int(crowd.order[i, given[i]])
                new.append(
                    Annotation(
                        project_id=project.pk,
                        item_id=item_id,
                        annotator=users[j],
                        label=keys[int(crowd.labels[i, j])],
                        seconds_spent=6.0,
                    )
                )
                given[i] += 1
            Annotation.objects.bulk_create(new)
            Item.objects.filter(pk__in=reopened).update(annotation_count=F("annotation_count") + 1)
            settle([it for it in items if it.pk in set(reopened)])
    truth = dict(GroundTruth.objects.filter(item__project=project).values_list("item_id", "label"))
    methods = dict(GroundTruth.objects.filter(item__project=project).values_list("item_id", "method"))
    last = dict(QualityItemResult.objects.filter(run=runs[-1]).values_list("item_id", "consensus_label"))
    final = np.array([keys.index(truth.get(it.pk) or last[it.pk]) for it in items])
    true = np.array([true_of[it.pk] for it in items])
    accepted = np.array([methods.get(it.pk) == "consensus" for it in items])
    runs[-1].refresh_from_db()
    return {
        "accuracy": float((final == true).mean()),
        "annotations": int(given.sum()),
        "runs": len(runs),
        "reviewed": len(reviewed),
        "per_round": per_batch,  # (batch, sent to review, reopened, audits among those sent)
        "accepted": int(accepted.sum()),
        "accepted_error": float((final[accepted] != true[accepted]).mean()) if accepted.any() else None,
        "rule": runs[-1].calibration or {},
        "reviewed_or_open": int(Item.objects.filter(project=project).exclude(status="resolved").count()),
    }


# --- export ---


def make_items(project, n, *, prefix="it"):
    return Item.objects.bulk_create(
        [
            Item(project=project, external_id=f"{prefix}-{i:06d}", payload={"text": f"t{i}"}, required_annotations=1)
            for i in range(n)
        ]
    )


def resolve(
    project,
    items,
    *,
    labels=("pos", "neg", "neu"),
    method="imported",
    annotators=(),
    batch=2000,
    model_version="",
    offset=0,
):
    """Set a label on each item (through ground_truth_set_many, in batches): one history row each."""
    changes = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        changes += ground_truth_set_many(
            project_id=project.pk,
            decisions=[
                Decision(
                    it.pk,
                    labels[(start + i + offset) % len(labels)],
                    method,
                    annotators=tuple(annotators),
                    model_version=model_version,
                )
                for i, it in enumerate(chunk)
            ],
        )
    return changes


# --- feedback ---
DAY = 86400
CHUNK = 5000


@dataclass
class Synthetic:
    cutoff: datetime
    predicted: np.ndarray  # epoch seconds
    delay: np.ndarray  # seconds (drawn for every prediction)
    labeled: np.ndarray  # bool: truth arrived by the cut-off
    correct: np.ndarray  # bool: truth == prediction
    conf: np.ndarray
    source: np.ndarray


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def synthetic_traffic(
    project,
    *,
    n,
    days,
    cutoff,
    delays,
    seed=3,
    sources=("chargeback", "user_correction"),
    model_version="v1",
    prefix="s",
) -> Synthetic:
    """`delays(rng, n)` draws n delays in seconds. Predictions are uniform over the `days` before `cutoff`."""
    rng = np.random.default_rng(seed)
    end = cutoff.timestamp()
    predicted = end - rng.uniform(0, days * DAY, n)
    delay = delays(rng, n)
    labeled = predicted + delay <= end
    conf = rng.uniform(0.5, 0.99, n)
    correct = rng.random(n) < conf
    source = np.array([sources[i % len(sources)] for i in range(n)])
    rows = []
    for i in range(n):
        pos = round(float(conf[i]), 4)
        neg = round((1 - pos) / 2, 4)
        rows.append(
            {
                "external_id": f"{prefix}{i}",
                "payload": {"text": f"t{i}"},
                "prediction": {
                    "model_version": model_version,
                    "label": "pos",
                    "probabilities": {"pos": pos, "neg": neg, "neu": round(1 - pos - neg, 4)},
                    "predicted_at": _iso(predicted[i]),
                },
            }
        )
    for start in range(0, n, CHUNK):
        items_ingest(project=project, rows=rows[start : start + CHUNK])
    truth = [
        {
            "external_id": f"{prefix}{i}",
            "label": "pos" if correct[i] else "neg",
            "observed_at": _iso(predicted[i] + delay[i]),
            "source": str(source[i]),
        }
        for i in np.nonzero(labeled)[0]
    ]
    for start in range(0, len(truth), CHUNK):
        ground_truth_import(project=project, rows=truth[start : start + CHUNK])
    # keep the probabilities as stored (rounded), for direct computations
    conf = np.round(conf, 4)
    return Synthetic(cutoff, predicted, delay, labeled, correct, conf, source)


def lognormal(median_seconds, sigma):
    return lambda rng, n: rng.lognormal(np.log(median_seconds), sigma, n)


def cutoff_now(minutes_ago=5) -> datetime:
    """A cut-off just before now (imports reject observations from the future)."""
    return datetime.now(tz=UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
