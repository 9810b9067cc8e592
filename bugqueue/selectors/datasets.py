"""Reads for datasets and evaluations, permission-checked through the dataset's project."""

from django.db.models import BooleanField, Count, Exists, OuterRef, Prefetch, Q, Value
from django.db.models.fields.json import KT

from bugqueue.models import (
    Dataset,
    DatasetMember,
    DatasetPending,
    DatasetVersion,
    Evaluation,
    EvaluationResult,
)
from bugqueue.selectors.access import access_in_project
from common.errors import NotFound
from labeling.models import Item
from labeling.selectors.access import ANY_ROLE
from labeling.selectors.blind import LabelVisibility, labels_visible_to

CHUNK = 5000


def live_members(dataset_id):
    """The dataset's members in its latest version."""
    return DatasetMember.objects.filter(dataset_id=dataset_id, removed_in__isnull=True)


def members_at(*, dataset_id: int, number: int):
    """The dataset's members as of version `number`."""
    return DatasetMember.objects.filter(dataset_id=dataset_id, added_in__lte=number).filter(
        Q(removed_in__isnull=True) | Q(removed_in__gt=number)
    )


def pending_item_ids(item_ids, *, project_id: int | None = None) -> list[int]:
    """Which of these items wait to join a dataset. With `project_id`, one index probe first answers
    the usual case (nothing waits in the project) without sending thousands of ids."""
    waiting = DatasetPending.objects.filter(added_in__isnull=True)
    if project_id is not None and not waiting.filter(dataset__project_id=project_id).exists():
        return []
    return list(waiting.filter(item_id__in=list(item_ids)).values_list("item_id", flat=True).distinct())


def access_dataset(*, user, dataset_id, roles=ANY_ROLE) -> Dataset:
    return access_in_project(Dataset.objects.all(), dataset_id, user=user, roles=roles, what="Dataset")


def access_evaluation(*, user, evaluation_id) -> Evaluation:
    return access_in_project(Evaluation.objects.all(), evaluation_id, user=user, what="Evaluation")


def dataset_list(*, project):
    return Dataset.objects.filter(project=project).prefetch_related("tags").order_by("name")


def dataset_version(*, dataset, number) -> DatasetVersion:
    version = DatasetVersion.objects.filter(dataset=dataset, number=number).select_related("created_by").first()
    if version is None:
        raise NotFound(f"Dataset {dataset.pk} has no version {number}.")
    return version


def version_rows(*, dataset_id, number, visibility: LabelVisibility, after_id=0, limit=None):
    """Keyset pages of (member id, external_id, label, payload, bug_id, added_in) for a version, by
    member id. The label is None where `visibility` (blind labeling) hides the item's labels."""
    qs = (
        members_at(dataset_id=dataset_id, number=number)
        .filter(id__gt=after_id)
        .order_by("id")
        .annotate(shown_label=visibility.label("label", "item__"))
        .values_list("id", "item__external_id", "shown_label", "item__payload", "bug_id", "added_in")
    )
    return list(qs[:limit]) if limit else qs


def version_row_stream(*, dataset_id, number, visibility: LabelVisibility):
    """Every row of a version, in member-id order, CHUNK rows per query (memory constant in size)."""
    after = 0
    while True:
        page = version_rows(dataset_id=dataset_id, number=number, visibility=visibility, after_id=after, limit=CHUNK)
        if not page:
            return
        yield from page
        after = page[-1][0]


def version_delta(*, dataset, number, user) -> dict:
    """Version `number` against the one before: its reason and bug, and the added and removed rows
    {external_id, label, bug}; label None where blind labeling hides it from `user`."""
    version = dataset_version(dataset=dataset, number=number)
    visibility = labels_visible_to(user=user, project=dataset.project)

    def rows(**which):
        qs = (
            DatasetMember.objects.filter(dataset_id=dataset.pk, **which)
            .order_by("id")
            .annotate(shown_label=visibility.label("label", "item__"))
            .values_list("item__external_id", "shown_label", "bug_id")
        )
        return [{"external_id": e, "label": lab, "bug": b} for e, lab, b in qs.iterator(chunk_size=CHUNK)]

    return {
        "number": number,
        "against": number - 1,
        "reason": version.reason,
        "bug": version.bug_id,
        "added": rows(added_in=number),
        "removed": rows(removed_in=number),
    }


def dataset_versions(*, dataset):
    return dataset.versions.select_related("created_by").order_by("number")


def datasets_overview(*, project) -> dict:
    """The datasets page: the project's datasets (gate datasets first) with their versions, newest
    first, and how many items wait to join each (for labels or a reviewer)."""
    datasets = list(
        dataset_list(project=project)
        .order_by("-gate", "name")
        .prefetch_related(
            Prefetch("versions", queryset=DatasetVersion.objects.select_related("created_by").order_by("-number"))
        )
    )
    waiting = dict(
        DatasetPending.objects.filter(dataset__project=project, added_in__isnull=True)
        .values_list("dataset_id")
        .annotate(n=Count("id"))
    )
    for d in datasets:
        d.waiting = waiting.get(d.pk, 0)
    return {"datasets": datasets}


def item_search(*, project_id: int, q: str = "", status: str | None = None, limit: int = 50, dataset_id=None):
    """Items of the project whose external_id or payload text contains `q` (case-insensitive),
    newest first, at most `limit`: (id, external_id, payload, status, ground truth label or None,
    in the dataset's latest version). Labels are shown as they are: callers are managers."""
    qs = Item.objects.filter(project_id=project_id)
    q = (q or "").strip()
    if q:
        qs = qs.annotate(text=KT("payload__text")).filter(Q(external_id__icontains=q) | Q(text__icontains=q))
    if status:
        qs = qs.filter(status=status)
    in_dataset = (
        Exists(live_members(dataset_id).filter(item_id=OuterRef("pk")))
        if dataset_id
        else Value(False, output_field=BooleanField())
    )
    return list(
        qs.annotate(in_dataset=in_dataset)
        .order_by("-id")
        .values_list("id", "external_id", "payload", "status", "ground_truth__label", "in_dataset")[:limit]
    )


def evaluations_redact(evaluations, *, project, visibility: LabelVisibility) -> list:
    """Evaluations as shown to this user: each result's `regression_items` (items the previous model
    got right and this one wrong, which tells their label) keeps only items whose labels the user
    may see. One query for the whole list."""
    evaluations = list(evaluations)
    if visibility.all:
        return evaluations
    results = [r for e in evaluations for r in e.results.all()]
    named = {x for r in results for x in (r.regression_items or [])}
    if not named:
        return evaluations
    from labeling.models import Item

    keep = set(
        Item.objects.filter(visibility.q(), project=project, external_id__in=named).values_list(
            "external_id", flat=True
        )
    )
    for r in results:
        r.regression_items = [x for x in r.regression_items if x in keep]
    return evaluations


def evaluation_list(*, project, model_version=None):
    qs = Evaluation.objects.filter(project=project).order_by("-id")
    if model_version:
        qs = qs.filter(model_version=model_version)
    return qs.prefetch_related("results__dataset", "results__previous__evaluation")


def evaluations_visible(*, user, project, model_version=None, limit=200) -> list:
    """The project's latest evaluations (at most `limit`) as `user` may see them (evaluations_redact)."""
    visibility = labels_visible_to(user=user, project=project)
    return evaluations_redact(
        evaluation_list(project=project, model_version=model_version)[:limit], project=project, visibility=visibility
    )


def evaluation_visible(*, user, evaluation_id) -> Evaluation:
    """One evaluation with its results, as `user` may see it (evaluations_redact)."""
    evaluation = access_evaluation(user=user, evaluation_id=evaluation_id)
    project = evaluation.project
    evaluation = evaluation_list(project=project).get(pk=evaluation.pk)
    visibility = labels_visible_to(user=user, project=project)
    return evaluations_redact([evaluation], project=project, visibility=visibility)[0]


def bug_dataset_flows(*, bug, limit=50):
    """The bug's hand-offs to datasets, newest first."""
    return bug.dataset_flows.order_by("-id")[:limit]


def evaluation_matrix(*, project, limit_models=12):
    """Latest evaluation per model version × dataset: for the models × datasets matrix."""
    results = (
        EvaluationResult.objects.filter(evaluation__project=project)
        .select_related("evaluation", "dataset")
        .order_by("-evaluation_id")
    )
    models, cells = [], {}
    for r in results.iterator(chunk_size=2000):
        mv = r.evaluation.model_version
        if mv not in models:
            if len(models) >= limit_models:
                continue
            models.append(mv)
        cells.setdefault((mv, r.dataset_id), r)
    return models, cells


# --- a bug's way into datasets (the bug page and its Resolve dialog) ----------------------------


def bug_dataset_progress(*, bug, limit=20) -> dict:
    """Where the bug's failures and look-alikes stand, per hand-off (`flows`, newest first, at most
    `limit`) and in total: `added` (live dataset rows citing the bug, one per item and dataset),
    items `waiting` for labels (failures with an unknown label and mined look-alikes, not yet
    labeled), items in `conflicts` waiting for a reviewer (the failure's expected label disagrees
    with the ground truth), `mined`, the `versions` the bug produced, each {dataset, name, number,
    url}, and the same counts per dataset (rows). Four queries in the usual case."""
    from django.db.models import Count, Sum
    from django.urls import reverse

    from bugqueue.models import PendingReason

    flows = list(bug.dataset_flows.order_by("-id")[: limit + 1])
    mined = sum(f.mined for f in flows) if len(flows) <= limit else bug.dataset_flows.aggregate(n=Sum("mined"))["n"]
    flows = flows[:limit]
    waiting = PendingReason.FAILURE, PendingReason.SIMILAR
    names = {}
    pending = {}
    for row in (
        DatasetPending.objects.filter(bug=bug, added_in__isnull=True)
        .values("dataset_id", "dataset__name")
        .annotate(
            waiting=Count("pk", filter=Q(reason__in=waiting)),
            conflicts=Count("pk", filter=Q(reason=PendingReason.CONFLICT)),
        )
    ):
        pending[row["dataset_id"]] = row
        names[row["dataset_id"]] = row["dataset__name"]
    added = {}
    for pk, name, n in (
        DatasetMember.objects.filter(bug=bug, removed_in__isnull=True)
        .values("dataset_id", "dataset__name")
        .annotate(n=Count("pk"))
        .values_list("dataset_id", "dataset__name", "n")
    ):
        added[pk] = n
        names[pk] = name
    versions = []
    for pk, name, number in (
        DatasetVersion.objects.filter(bug=bug)
        .order_by("dataset__name", "dataset_id", "number")
        .values_list("dataset_id", "dataset__name", "number")
    ):
        versions.append((pk, number))
        names[pk] = name
    # Items, not rows: one item waiting for two datasets is labeled (or decided) once.
    items_waiting = {
        "waiting": sum(p["waiting"] for p in pending.values()),
        "conflicts": sum(p["conflicts"] for p in pending.values()),
    }
    if len(pending) > 1:
        items_waiting = DatasetPending.objects.filter(bug=bug, added_in__isnull=True).aggregate(
            waiting=Count("item_id", filter=Q(reason__in=waiting), distinct=True),
            conflicts=Count("item_id", filter=Q(reason=PendingReason.CONFLICT), distinct=True),
        )
    unnamed = ({d for f in flows for d in f.datasets} | {v["dataset"] for f in flows for v in f.versions}) - set(names)
    if unnamed:
        names.update(Dataset.objects.filter(project_id=bug.project_id, pk__in=unnamed).values_list("pk", "name"))
    page = reverse("datasets-page", args=[bug.project_id])

    def dataset(pk):
        return {"id": pk, "name": names.get(pk, f"dataset {pk}"), "url": f"{page}#dataset-{pk}"}

    def version(pk, number):
        return {"dataset": pk, "name": names.get(pk, f"dataset {pk}"), "number": number, "url": f"{page}#dataset-{pk}"}

    return {
        "flows": [
            {
                "id": f.pk,
                "status": f.status,
                "error": f.error,
                "created_at": f.created_at,
                "finished_at": f.finished_at,
                "mine_similar": f.mine_similar,
                "datasets": [dataset(pk) for pk in f.datasets],
                "added": f.added,
                "pending": f.pending,
                "conflicts": f.conflicts,
                "mined": f.mined,
                "versions": [version(v["dataset"], v["number"]) for v in f.versions],
            }
            for f in flows
        ],
        "total": {
            "added": sum(added.values()),
            "waiting": items_waiting["waiting"],
            "conflicts": items_waiting["conflicts"],
            "mined": mined or 0,
            "versions": [version(pk, number) for pk, number in versions],
            "datasets": [
                {
                    **dataset(pk),
                    "added": added.get(pk, 0),
                    "waiting": pending.get(pk, {}).get("waiting", 0),
                    "conflicts": pending.get(pk, {}).get("conflicts", 0),
                }
                for pk in sorted(set(added) | set(pending), key=lambda pk: (names.get(pk, ""), pk))
            ],
        },
    }


def resolve_dialog_datasets(*, project) -> list[dict]:
    """The project's datasets as the Resolve dialog lists them: {id, name, tags (slugs), gate, url}."""
    from django.urls import reverse

    page = reverse("datasets-page", args=[project.pk])
    return [
        {
            "id": d.pk,
            "name": d.name,
            "tags": sorted(t.slug for t in d.tags.all()),
            "gate": d.gate,
            "url": f"{page}#dataset-{d.pk}",
        }
        for d in dataset_list(project=project)
    ]
