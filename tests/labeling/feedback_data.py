"""Ingesting predictions and reading the delay report, for the feedback-delay tests."""

from labeling.models import Item
from labeling.selectors.feedback import DelayFilters, feedback_delay_report
from labeling.services.ingestion import items_ingest

PROBS = {"pos": 0.8, "neg": 0.15, "neu": 0.05}


def ingest(project, n, *, at, prefix="e", model_version="v1", probs=PROBS):
    rows = [
        {
            "external_id": f"{prefix}{i}",
            "payload": {"text": str(i)},
            "prediction": {
                "model_version": model_version,
                "label": "pos",
                "probabilities": probs,
                "predicted_at": (at(i) if callable(at) else at).isoformat(),
            },
        }
        for i in range(n)
    ]
    items_ingest(project=project, rows=rows)
    return list(Item.objects.filter(project=project, external_id__startswith=prefix).order_by("id"))


def report(project, now=None, **filters):
    return feedback_delay_report(project=project, filters=DelayFilters(**filters), now=now)
