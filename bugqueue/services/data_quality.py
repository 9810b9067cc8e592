"""Data-quality bugs: a batch that failed a data-quality check (labeling.services.data_checks, via
the data_quality.alert event) files into one bug per (field, check) of the project: the first
failing batch opens it, later ones add an occurrence, a history row with their figures and a few
example items; a resolved one is reopened as a regression (bugqueue.services.grouping)."""

import json

from django.db import transaction
from django.utils import timezone

from bugqueue.models import BugEvent, BugKind, FailureExample, FailureSource, Priority, Tag
from bugqueue.services.grouping import BugDraft, FilingResult, bug_file
from labeling.models import Item, Project
from labeling.services.data_checks import batch_profile_bug_link

CHECK_TITLES = {
    "new_field": "new payload field {field}",
    "missing_field": "payload field {field} went missing",
    "type_change": "payload field {field} changed type",
    "missing_share": "payload field {field} is missing more often",
    "numeric_shift": "values of {field} shifted",
    "length_shift": "text length of {field} shifted",
    "category_shift": "categories of {field} shifted",
    "class_mix": "predicted class mix shifted",
    "confidence_drop": "prediction confidence dropped",
}
CHECK_TAGS = {
    "new_field": "schema_change",
    "missing_field": "missing_feature_values",
    "type_change": "schema_change",
    "missing_share": "missing_feature_values",
}


def data_quality_fingerprint(*, field: str, check: str) -> str:
    return f"data_quality:{field}:{check}"


def _figures(check: dict, *, batch_id: int, rows: int, would_have_fired, of_last) -> str:
    text = (
        f"Batch {batch_id} ({rows} rows): observed {json.dumps(check.get('observed'), sort_keys=True)}; "
        f"expected {json.dumps(check.get('expected'), sort_keys=True)}."
    )
    if of_last:
        text += f" The same rule would have fired on {would_have_fired} of the last {of_last} batches."
    return text


@transaction.atomic
def data_quality_file(*, project_id: int, data: dict, path: str = "", now=None) -> FilingResult | None:
    """File one failed check of a batch (the `data` of a data_quality.alert event with one check)
    into its (field, check) bug; record the bug on the batch. One occurrence per failing batch."""
    if not data.get("checks") or not Project.objects.filter(pk=project_id).exists():
        return None
    now = now or timezone.now()
    check = data["checks"][0]
    field, name = str(check["field"]), str(check["check"])
    batch_id, rows = data.get("batch"), data.get("rows", 0)
    figures = _figures(
        check, batch_id=batch_id, rows=rows, would_have_fired=data.get("would_have_fired"), of_last=data.get("of_last")
    )
    title = "Data quality: " + CHECK_TITLES.get(name, "{field}: " + name).format(field=field)
    tag = CHECK_TAGS.get(name)
    draft = BugDraft(
        title=title,
        kind=BugKind.DATA_QUALITY,
        priority=Priority.P2,
        description=f"An ingested batch looked unlike the project's recent batches ({name} of {field}). {figures}"
        + (f" Batches: {path}" if path else ""),
        tag_ids=tuple(Tag.objects.filter(slug=tag).values_list("pk", flat=True)) if tag else (),
        note="Filed automatically: data-quality check failed. " + figures,
    )
    result = bug_file(
        project_id=project_id,
        fingerprint=data_quality_fingerprint(field=field, check=name),
        draft=draft,
        failures=[],
        now=now,
    )
    if not result.created:
        BugEvent.objects.create(
            bug=result.bug, field="data_quality", from_value="", to_value=str(batch_id), note=figures, created_at=now
        )
    examples = [str(e) for e in data.get("examples") or []]
    if examples:
        items = Item.objects.filter(project_id=project_id, external_id__in=examples)
        FailureExample.objects.bulk_create(
            [
                FailureExample(
                    bug_id=result.bug.pk,
                    project_id=project_id,
                    item_id=item_id,
                    external_id=external_id,
                    source=FailureSource.REPORT,
                    created_at=now,
                )
                for item_id, external_id in items.values_list("pk", "external_id")
            ]
        )
    if batch_id is not None:
        batch_profile_bug_link(batch_id=batch_id, field=field, check=name, bug_id=result.bug.pk)
    return result
