"""Validation datasets: creation, immutable versions (manual curation and bug hand-offs), and the
flow from a resolved bug to data: known failures now; unlabeled ones, mined look-alikes and
failures whose expected label disagrees with the ground truth (sent to review) later, in batches
(bugqueue.services.absorb)."""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from bugqueue.models import (
    Bug,
    BugDatasetFlow,
    Dataset,
    DatasetMember,
    DatasetPending,
    DatasetVersion,
    FlowStatus,
    PendingReason,
    Tag,
    VersionReason,
)
from bugqueue.selectors.datasets import live_members
from bugqueue.services.announce import announce_dataset_version
from common.errors import Conflict, ValidationFailed
from labeling.models import GroundTruth, Item, ItemStatus
from labeling.services.reopen import items_reopen_rank_set

log = logging.getLogger(__name__)

# Items pulled into labeling by a resolved bug are served before everything else (lower first):
# the bug's own failures, then mined look-alikes by similarity. See Item.reopen_rank.
FAILURE_RANK = -2.0
SIMILAR_RANK_BASE = -1.0


@dataclass(frozen=True)
class Addition:
    item_id: int
    label: str
    bug_id: int | None = None


def tags_by_slug(slugs) -> list[Tag]:
    """The tags named by `slugs` (each once); ValidationFailed naming any unknown slug."""
    slugs = list(dict.fromkeys(slugs))
    tags = list(Tag.objects.filter(slug__in=slugs))
    unknown = sorted(set(slugs) - {t.slug for t in tags})
    if unknown:
        raise ValidationFailed(
            f"Unknown tags: {', '.join(unknown)}.", fields={"tags": [f"Unknown tag {t!r}." for t in unknown]}
        )
    return tags


def dataset_create(
    *, project, actor, name: str, description: str = "", tags=(), min_accuracy=None, gate: bool = False
) -> Dataset:
    """A new dataset: 400 for bad input, 409 when the project already has the name."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("name is required.", fields={"name": ["This field is required."]})
    if min_accuracy is not None and not (0 <= min_accuracy <= 1):
        raise ValidationFailed("min_accuracy must be from 0 to 1.", fields={"min_accuracy": ["Must be from 0 to 1."]})
    tag_objs = tags_by_slug(tags)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                project=project,
                name=name,
                description=description,
                min_accuracy=min_accuracy,
                gate=bool(gate),
                created_by=actor,
            )
            dataset.tags.set(tag_objs)
    except IntegrityError:
        raise Conflict(
            f"This project already has a dataset named {name!r}.",
            code="dataset_exists",
            fields={"name": ["Already used in this project."]},
        )
    return dataset


def _relabel_candidates(dataset_id):
    """Live members whose item's ground truth has changed since the label was frozen. An item in
    conflict (its label disputed, waiting for a reviewer) keeps its frozen label until decided."""
    return list(
        live_members(dataset_id)
        .filter(item__ground_truth__isnull=False)
        .exclude(item__ground_truth__label=F("label"))
        .exclude(item__status=ItemStatus.CONFLICT)
        .values_list("id", "item_id", "item__ground_truth__label", "bug_id")
    )


@transaction.atomic
def dataset_version_create(
    *,
    dataset_id: int,
    actor=None,
    add=(),
    remove_item_ids=(),
    reason=VersionReason.MANUAL,
    note: str = "",
    bug_id: int | None = None,
) -> DatasetVersion | None:
    """Write version latest+1 with its delta, under the dataset's row lock (concurrent writers get
    consecutive numbers and lose nothing). Items already in the dataset are skipped (idempotent);
    live members whose ground truth changed are relabeled in the same version. Returns None when
    nothing would change (no empty versions). Announces dataset.version_created after commit."""
    dataset = Dataset.objects.select_for_update().get(pk=dataset_id)
    number = dataset.latest_version + 1
    add = list({a.item_id: a for a in add}.values())
    live = (
        set(live_members(dataset.pk).filter(item_id__in=[a.item_id for a in add]).values_list("item_id", flat=True))
        if add
        else set()
    )
    new = [a for a in add if a.item_id not in live]
    new_ids = {a.item_id for a in new}
    remove_rows = (
        list(
            live_members(dataset.pk)
            .filter(item_id__in=list(remove_item_ids))
            .exclude(item_id__in=new_ids)
            .values_list("id", flat=True)
        )
        if remove_item_ids
        else []
    )
    relabel = [r for r in _relabel_candidates(dataset.pk) if r[1] not in new_ids and r[0] not in set(remove_rows)]
    if not new and not remove_rows and not relabel:
        return None
    closing = remove_rows + [r[0] for r in relabel]
    if closing:
        DatasetMember.objects.filter(pk__in=closing).update(removed_in=number)
    DatasetMember.objects.bulk_create(
        [
            DatasetMember(dataset_id=dataset.pk, item_id=a.item_id, label=a.label, added_in=number, bug_id=a.bug_id)
            for a in new
        ]
        + [
            DatasetMember(dataset_id=dataset.pk, item_id=item_id, label=label, added_in=number, bug_id=bug)
            for _, item_id, label, bug in relabel
        ],
        batch_size=5000,
    )
    previous_size = dataset.versions.filter(number=dataset.latest_version).values_list("size", flat=True).first() or 0
    version = DatasetVersion.objects.create(
        dataset=dataset,
        number=number,
        reason=reason,
        bug_id=bug_id,
        note=note,
        created_by=actor,
        added=len(new),
        removed=len(remove_rows),
        relabeled=len(relabel),
        size=previous_size + len(new) - len(remove_rows),
    )
    dataset.latest_version = number
    dataset.save(update_fields=["latest_version"])
    announce_dataset_version(dataset=dataset, version=version)
    return version


def dataset_version_curate(
    *, dataset: Dataset, actor, add_external_ids=(), remove_external_ids=(), note=""
) -> DatasetVersion | None:
    """Manual curation by external_id. Items must exist; added items must have ground truth (their
    current label is frozen into the version)."""
    add_external_ids, remove_external_ids = (
        list(dict.fromkeys(add_external_ids)),
        list(dict.fromkeys(remove_external_ids)),
    )
    if not add_external_ids and not remove_external_ids:
        raise ValidationFailed("Give external_ids to add or remove.", fields={"add": ["Nothing to do."]})
    both = sorted(set(add_external_ids) & set(remove_external_ids))
    if both:
        raise ValidationFailed(
            f"Cannot add and remove the same items: {', '.join(both[:20])}.", fields={"add": both[:100]}
        )
    wanted = add_external_ids + remove_external_ids
    found = {}
    for start in range(0, len(wanted), 5000):
        found.update(
            Item.objects.filter(
                project_id=dataset.project_id, external_id__in=wanted[start : start + 5000]
            ).values_list("external_id", "id")
        )
    unknown = [e for e in wanted if e not in found]
    labels = dict(
        GroundTruth.objects.filter(item_id__in=[found[e] for e in add_external_ids if e in found]).values_list(
            "item_id", "label"
        )
    )
    unlabeled = [e for e in add_external_ids if e in found and found[e] not in labels]
    fields = {}
    if unknown:
        fields["unknown"] = unknown[:1000]
    if unlabeled:
        fields["without_ground_truth"] = unlabeled[:1000]
    if fields:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} unknown external_ids")
        if unlabeled:
            parts.append(f"{len(unlabeled)} items without ground truth")
        raise ValidationFailed(f"Nothing was changed: {' and '.join(parts)}.", code="invalid_items", fields=fields)
    return dataset_version_create(
        dataset_id=dataset.pk,
        actor=actor,
        note=note,
        reason=VersionReason.MANUAL,
        add=[Addition(found[e], labels[found[e]]) for e in add_external_ids],
        remove_item_ids=[found[e] for e in remove_external_ids],
    )


# --- from a resolved bug to data ------------------------------------------------------------


@transaction.atomic
def bug_datasets_flow_start(*, bug: Bug, actor, dataset_ids=(), mine_similar: int = 0) -> BugDatasetFlow | None:
    """Record the hand-off and run it in Celery after commit. Called by bug_resolve. A hand-off with
    nothing to do (no dataset chosen or following the bug's tags, no look-alikes to mine) is not
    recorded: None."""
    dataset_ids = sorted({int(i) for i in dataset_ids})
    found = set(Dataset.objects.filter(project_id=bug.project_id, pk__in=dataset_ids).values_list("pk", flat=True))
    missing = [i for i in dataset_ids if i not in found]
    if missing:
        raise ValidationFailed(
            f"Unknown datasets for this project: {missing}.",
            fields={"datasets": [f"Unknown dataset {i}." for i in missing]},
        )
    if mine_similar < 0 or mine_similar > 10_000:
        raise ValidationFailed(
            "mine_similar must be from 0 to 10,000.", fields={"mine_similar": ["Must be from 0 to 10000."]}
        )
    if not mine_similar and not _target_datasets(bug, dataset_ids):
        return None
    flow = BugDatasetFlow.objects.create(bug=bug, datasets=dataset_ids, mine_similar=mine_similar, created_by=actor)
    from bugqueue.tasks import bug_datasets_flow_task
    from labeling.services.work import enqueue_on_commit

    enqueue_on_commit(bug_datasets_flow_task, flow.pk)
    return flow


def _target_datasets(bug, chosen):
    tag_ids = list(bug.tags.values_list("pk", flat=True))
    qs = Dataset.objects.filter(project_id=bug.project_id)
    return list(
        qs.filter(Q(pk__in=chosen) | Q(tags__in=tag_ids)).distinct().order_by("pk").values_list("pk", flat=True)
    )


def bug_datasets_flow_run(*, flow_id: int) -> BugDatasetFlow:
    """Idempotent: re-running (a retried task, or a bug resolved twice) never adds an item twice."""
    with transaction.atomic():
        flow = BugDatasetFlow.objects.select_for_update().select_related("bug").get(pk=flow_id)
        if flow.status == FlowStatus.DONE:
            return flow
        flow.status = FlowStatus.RUNNING
        flow.save(update_fields=["status"])
    try:
        _run_flow(flow)
    except Exception as exc:
        BugDatasetFlow.objects.filter(pk=flow.pk).update(
            status=FlowStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
        )
        raise
    flow.refresh_from_db()
    return flow


def _run_flow(flow: BugDatasetFlow) -> None:
    from labeling.services.conflicts import ClaimedLabel, items_conflict_raise
    from labeling.services.similarity import similar_items

    bug = flow.bug
    dataset_ids = _target_datasets(bug, flow.datasets)
    failures = list(bug.failures.filter(item__isnull=False).values_list("item_id", "expected_label"))
    failure_items = list(dict.fromkeys(i for i, _ in failures))
    expected = {}
    for item_id, label in failures:
        if label:
            expected[item_id] = label
    truth = dict(GroundTruth.objects.filter(item_id__in=failure_items).values_list("item_id", "label"))
    # A failure's expected label that disagrees with the ground truth: neither label enters; a
    # reviewer decides, and the decided label joins through the absorb pass.
    disputed = {i: expected[i] for i in failure_items if i in expected and i in truth and truth[i] != expected[i]}

    mined = []
    if flow.mine_similar and failure_items:
        exclude = set(
            DatasetMember.objects.filter(dataset_id__in=dataset_ids, removed_in__isnull=True).values_list(
                "item_id", flat=True
            )
        )
        exclude |= set(DatasetPending.objects.filter(dataset_id__in=dataset_ids).values_list("item_id", flat=True))
        mined = similar_items(
            project_id=bug.project_id, item_ids=failure_items, n=flow.mine_similar, exclude_item_ids=exclude
        )
    mined_ids = [i for i, _ in mined]
    truth.update(GroundTruth.objects.filter(item_id__in=mined_ids).values_list("item_id", "label"))

    known = [
        Addition(i, truth.get(i) or expected[i], bug.pk)
        for i in failure_items
        if (truth.get(i) or expected.get(i)) and i not in disputed
    ]
    known += [Addition(i, truth[i], bug.pk) for i in mined_ids if i in truth and i not in expected]
    unknown_failures = [i for i in failure_items if not (truth.get(i) or expected.get(i))]
    unknown_mined = [(i, s) for i, s in mined if i not in truth]

    conflicts = []
    if disputed and dataset_ids:
        with transaction.atomic():
            conflicts = items_conflict_raise(
                project_id=bug.project_id,
                claims=[ClaimedLabel(i, label) for i, label in disputed.items()],
                source=f"bug:{bug.pk}",
                actor=flow.created_by,
            )
            DatasetPending.objects.bulk_create(
                [
                    DatasetPending(
                        dataset_id=dataset_id,
                        item_id=i,
                        bug=bug,
                        reason=PendingReason.CONFLICT,
                        expected_label=disputed[i],
                    )
                    for dataset_id in dataset_ids
                    for i in disputed
                ],
                ignore_conflicts=True,
            )

    versions, added, pending = [], 0, 0
    for dataset_id in dataset_ids:
        with transaction.atomic():
            version = dataset_version_create(
                dataset_id=dataset_id,
                add=known,
                reason=VersionReason.BUG,
                bug_id=bug.pk,
                note=f"Bug #{bug.pk} resolved: {bug.title}"[:2000],
                actor=flow.created_by,
            )
            rows = [
                DatasetPending(dataset_id=dataset_id, item_id=i, bug=bug, reason=PendingReason.FAILURE)
                for i in unknown_failures
            ]
            rows += [
                DatasetPending(dataset_id=dataset_id, item_id=i, bug=bug, reason=PendingReason.SIMILAR, similarity=s)
                for i, s in unknown_mined
            ]
            created = DatasetPending.objects.bulk_create(rows, ignore_conflicts=True)
        if version is not None:
            versions.append({"dataset": dataset_id, "number": version.number})
            added += version.added
        pending += len(created)
    # Unlabeled items go to the front of the labeling queue (served before fresh items).
    ranks = dict.fromkeys(unknown_failures, FAILURE_RANK)
    ranks.update((item_id, SIMILAR_RANK_BASE + (1 - score) / 2) for item_id, score in unknown_mined)
    with transaction.atomic():
        items_reopen_rank_set(item_ranks=ranks)
        BugDatasetFlow.objects.filter(pk=flow.pk).update(
            status=FlowStatus.DONE,
            added=added,
            pending=len(unknown_failures) + len(unknown_mined),
            conflicts=len(disputed) if dataset_ids else 0,
            mined=len(mined),
            versions=versions,
            finished_at=timezone.now(),
            error="",
        )
    log.info(
        "bug %s -> datasets %s: %s added, %s waiting for labels, %s sent to review (%s new conflicts), %s mined",
        bug.pk,
        dataset_ids,
        added,
        pending,
        len(disputed) if dataset_ids else 0,
        len(conflicts),
        len(mined),
    )
