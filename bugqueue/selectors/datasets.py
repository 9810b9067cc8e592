"""Reads for datasets and evaluations, permission-checked through the dataset's project."""

from django.db.models import Q

from common.errors import NotFound
from labeling.selectors.access import ANY_ROLE, access_project
from labeling.selectors.blind import LabelVisibility

from bugqueue.models import Dataset, DatasetMember, DatasetVersion, Evaluation, EvaluationPrediction, EvaluationResult

CHUNK = 5000


def live_members(dataset_id):
    """The dataset's members in its latest version."""
    return DatasetMember.objects.filter(dataset_id=dataset_id, removed_in__isnull=True)


def members_at(*, dataset_id: int, number: int):
    """The dataset's members as of version `number`."""
    return DatasetMember.objects.filter(dataset_id=dataset_id, added_in__lte=number).filter(
        Q(removed_in__isnull=True) | Q(removed_in__gt=number)
    )


def access_dataset(*, user, dataset_id, roles=ANY_ROLE) -> Dataset:
    try:
        dataset_id = int(dataset_id)
    except (TypeError, ValueError):
        raise NotFound("Dataset not found.")
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None:
        raise NotFound("Dataset not found.")
    try:
        dataset.project = access_project(user=user, project_id=dataset.project_id, roles=roles)
    except NotFound:
        raise NotFound("Dataset not found.")
    return dataset


def access_evaluation(*, user, evaluation_id) -> Evaluation:
    evaluation = Evaluation.objects.filter(pk=evaluation_id).first() if str(evaluation_id).isdigit() else None
    if evaluation is None:
        raise NotFound("Evaluation not found.")
    try:
        evaluation.project = access_project(user=user, project_id=evaluation.project_id)
    except NotFound:
        raise NotFound("Evaluation not found.")
    return evaluation


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
    qs = members_at(dataset_id=dataset_id, number=number).filter(id__gt=after_id).order_by("id").annotate(
        shown_label=visibility.label("label", "item__")).values_list(
        "id", "item__external_id", "shown_label", "item__payload", "bug_id", "added_in")
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


def version_delta(*, dataset_id, number, visibility: LabelVisibility):
    """(added, removed) rows of (external_id, label, bug_id); label None where blind labeling hides it."""
    from bugqueue.models import DatasetMember

    def rows(**which):
        return DatasetMember.objects.filter(dataset_id=dataset_id, **which).order_by("id").annotate(
            shown_label=visibility.label("label", "item__")).values_list("item__external_id", "shown_label", "bug_id")
    return rows(added_in=number), rows(removed_in=number)


def evaluation_failure_rows(*, evaluation, result, visibility: LabelVisibility, limit=500) -> tuple[list[dict], int]:
    """The items of the result's dataset version the evaluated model got wrong (at most `limit`), and
    how many members blind labeling hides from this user (left out: a wrong answer shown next to
    the expected label is both labels)."""
    members = members_at(dataset_id=result.dataset_id, number=result.dataset_version)
    hidden = 0 if visibility.all else members.exclude(visibility.q("item__")).count()
    shown = members.filter(visibility.q("item__"))
    pred = dict(EvaluationPrediction.objects.filter(evaluation=evaluation, item_id__in=shown.values("item_id"))
                .values_list("item_id", "label"))
    rows = []
    for item_id, external_id, label, payload, bug_id in shown.order_by("id").values_list(
            "item_id", "item__external_id", "label", "item__payload", "bug_id").iterator(chunk_size=2000):
        got = pred.get(item_id)
        if got != label:
            rows.append({"external_id": external_id, "expected": label, "predicted": got, "payload": payload, "bug": bug_id})
            if len(rows) >= limit:
                break
    return rows, hidden


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

    keep = set(Item.objects.filter(visibility.q(), project=project, external_id__in=named)
               .values_list("external_id", flat=True))
    for r in results:
        r.regression_items = [x for x in r.regression_items if x in keep]
    return evaluations


def evaluation_list(*, project, model_version=None):
    qs = Evaluation.objects.filter(project=project).order_by("-id")
    if model_version:
        qs = qs.filter(model_version=model_version)
    return qs.prefetch_related("results__dataset", "results__previous__evaluation")


def evaluation_matrix(*, project, limit_models=12):
    """Latest evaluation per model version × dataset: for the models × datasets matrix."""
    results = (EvaluationResult.objects.filter(evaluation__project=project)
               .select_related("evaluation", "dataset").order_by("-evaluation_id"))
    models, cells = [], {}
    for r in results.iterator(chunk_size=2000):
        mv = r.evaluation.model_version
        if mv not in models:
            if len(models) >= limit_models:
                continue
            models.append(mv)
        cells.setdefault((mv, r.dataset_id), r)
    return models, cells
