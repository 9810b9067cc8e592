"""Bulk actions a manager takes on items chosen in the explorer (by ids or by the explorer's filters):
set their priority, send them to review, delete them.

- set_priority: every chosen item, one UPDATE.
- send_to_review: chosen items that have at least one annotation and are open or resolved become
  disputed, which is what the review queue serves (a resolved item keeps its ground truth until a
  reviewer decides again), through labeling.services.quality.review as a quality run's doubted labels
  do, so each leaves a record of who sent it and why (shown on the item's page). Items without
  annotations, and items already in review, are left as they are and counted as skipped.
- delete: only items nobody has worked on: no annotation, no assignment, no ground truth, and no row
  of another app (a bug's failure example, a dataset version) pointing at them. The others are
  skipped and counted, so labels and frozen dataset versions are never lost through this action.

Adding to a validation dataset is the bug queue's operation (labeling never imports it): the page
calls the datasets API with the chosen items' external ids."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from labeling.models import Annotation, Assignment, GroundTruth, Item
from labeling.services.quality.review import items_send_to_review

ACTIONS = ("set_priority", "send_to_review", "delete")
MAX_ITEMS = 10_000
EXPLORER_SOURCE = "explorer"


@dataclass
class BulkResult:
    action: str
    matched: int
    changed: int

    @property
    def skipped(self) -> int:
        return self.matched - self.changed

    def as_dict(self) -> dict:
        return {"action": self.action, "matched": self.matched, "changed": self.changed, "skipped": self.skipped}


def _foreign_refs():
    """Exists() over every other app's rows that point at an item (found through the model's reverse
    relations, so labeling names no other app)."""
    conds = Q()
    for rel in Item._meta.related_objects:
        model = rel.related_model
        if model._meta.app_label == "labeling":
            continue
        conds |= Q(Exists(model._base_manager.filter(**{rel.field.name: OuterRef("pk")})))
    return conds


@transaction.atomic
def items_bulk_apply(
    *, project, item_ids: list[int], action: str, value=None, actor=None, reason: str = ""
) -> BulkResult:
    """Apply `action` to the project's items among `item_ids` (see the module docstring). Ids of other
    projects' items are ignored. Returns how many matched and changed. `actor` and `reason` are
    recorded with each item sent to review."""
    ids = sorted({int(i) for i in item_ids})
    base = Item.objects.filter(project=project, pk__in=ids)
    matched = base.count()
    if action == "set_priority":
        changed = base.update(priority=int(value))
    elif action == "send_to_review":
        moved = items_send_to_review(
            project=project,
            item_ids=ids,
            actor=actor,
            source=EXPLORER_SOURCE,
            reason=reason or "Sent to review from the item explorer.",
        )
        changed = len(moved)
    elif action == "delete":
        refs = _foreign_refs()
        free = (
            base.exclude(Exists(Annotation.objects.filter(item_id=OuterRef("pk"))))
            .exclude(Exists(Assignment.objects.filter(item_id=OuterRef("pk"))))
            .exclude(Exists(GroundTruth.objects.filter(item_id=OuterRef("pk"))))
        )
        if refs:
            free = free.exclude(refs)
        free_ids = list(free.select_for_update().values_list("pk", flat=True))
        changed, _ = Item.objects.filter(pk__in=free_ids).delete()
        changed = len(free_ids)
    else:
        raise ValueError(f"unknown action {action!r}")
    return BulkResult(action=action, matched=matched, changed=changed)
