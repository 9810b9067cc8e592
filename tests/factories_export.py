"""Helpers for export tests: label history written through the ground-truth service, as in production."""

from labeling.models import Item
from labeling.services.ground_truth import Decision, ground_truth_set_many


def make_items(project, n, *, prefix="it"):
    return Item.objects.bulk_create(
        [Item(project=project, external_id=f"{prefix}-{i:06d}", payload={"text": f"t{i}"}, required_annotations=1)
         for i in range(n)]
    )


def resolve(project, items, *, labels=("pos", "neg", "neu"), method="imported", annotators=(), batch=2000,
            model_version="", offset=0):
    """Set a label on each item (through ground_truth_set_many, in batches): one history row each."""
    changes = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        changes += ground_truth_set_many(project_id=project.pk, decisions=[
            Decision(it.pk, labels[(start + i + offset) % len(labels)], method, annotators=tuple(annotators),
                     model_version=model_version)
            for i, it in enumerate(chunk)
        ])
    return changes
