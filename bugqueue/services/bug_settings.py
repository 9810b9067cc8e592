"""Per-project bug-queue settings: validated writes of BugProjectSettings."""

from django.db import transaction

from bugqueue.models import (
    BugProjectSettings,
)
from bugqueue.services.bugs import UNSET
from common.errors import ValidationFailed
from labeling.models import Project

# --- settings ---------------------------------------------------------------------
MAX_DATASET_BATCH_SECONDS = 86_400


@transaction.atomic
def bug_settings_update(
    *,
    project: Project,
    actor,
    auto_file_failed_predictions=UNSET,
    dataset_batch_seconds=UNSET,
    slice_drop_threshold=UNSET,
) -> BugProjectSettings:
    """Change the given settings (the others stay). dataset_batch_seconds: how long labels of items
    waiting to join datasets are gathered before one absorb pass (0 to 86,400; 0: at once);
    slice_drop_threshold: the accuracy drop (0 to 1) that flags a slice in an evaluation."""
    errors = {}
    if auto_file_failed_predictions is not UNSET and not isinstance(auto_file_failed_predictions, bool):
        errors["auto_file_failed_predictions"] = ["Must be a boolean."]
    if dataset_batch_seconds is not UNSET and (
        isinstance(dataset_batch_seconds, bool)
        or not isinstance(dataset_batch_seconds, int)
        or not 0 <= dataset_batch_seconds <= MAX_DATASET_BATCH_SECONDS
    ):
        errors["dataset_batch_seconds"] = [f"Must be a whole number of seconds from 0 to {MAX_DATASET_BATCH_SECONDS}."]
    if slice_drop_threshold is not UNSET and (
        isinstance(slice_drop_threshold, bool)
        or not isinstance(slice_drop_threshold, int | float)
        or not 0 <= slice_drop_threshold <= 1
    ):
        errors["slice_drop_threshold"] = ["Must be a number from 0 to 1."]
    if errors:
        field, messages = next(iter(errors.items()))
        if field == "auto_file_failed_predictions":
            message = "auto_file_failed_predictions must be true or false."
        else:
            message = f"{field}: {messages[0]}"
        raise ValidationFailed(message, fields=errors)
    settings_row, _ = BugProjectSettings.objects.select_for_update().get_or_create(project=project)
    changed = []
    for name, value in (
        ("auto_file_failed_predictions", auto_file_failed_predictions),
        ("dataset_batch_seconds", dataset_batch_seconds),
        ("slice_drop_threshold", None if slice_drop_threshold is UNSET else float(slice_drop_threshold)),
    ):
        if value is UNSET or value is None or getattr(settings_row, name) == value:
            continue
        setattr(settings_row, name, value)
        changed.append(name)
    if changed:
        settings_row.save(update_fields=[*changed, "updated_at"])
    return settings_row
