"""Reads for datasets and evaluations, permission-checked through the dataset's project."""

from labeling.errors import NotFound
from labeling.selectors import ANY_ROLE, access_project

from bugqueue.models import Dataset, DatasetVersion, Evaluation, EvaluationResult
from bugqueue.services.datasets import members_at

CHUNK = 5000


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
        access_project(user=user, project_id=evaluation.project_id)
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


def version_rows(*, dataset_id, number, after_id=0, limit=None):
    """Keyset pages of (member id, external_id, label, payload, bug_id) for a version, by member id."""
    qs = members_at(dataset_id=dataset_id, number=number).filter(id__gt=after_id).order_by("id").values_list(
        "id", "item__external_id", "label", "item__payload", "bug_id", "added_in")
    return list(qs[:limit]) if limit else qs


def version_row_stream(*, dataset_id, number):
    """Every row of a version, in member-id order, CHUNK rows per query (memory constant in size)."""
    after = 0
    while True:
        page = version_rows(dataset_id=dataset_id, number=number, after_id=after, limit=CHUNK)
        if not page:
            return
        yield from page
        after = page[-1][0]


def version_delta(*, dataset_id, number):
    from bugqueue.models import DatasetMember

    added = DatasetMember.objects.filter(dataset_id=dataset_id, added_in=number).order_by("id").values_list(
        "item__external_id", "label", "bug_id")
    removed = DatasetMember.objects.filter(dataset_id=dataset_id, removed_in=number).order_by("id").values_list(
        "item__external_id", "label", "bug_id")
    return added, removed


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
