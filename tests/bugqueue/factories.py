"""Bug-queue test helpers: bugs are made through the services, so every invariant holds."""

from datetime import timedelta

from django.utils import timezone

from bugqueue.models import Bug
from bugqueue.services.bugs import bug_resolve, bug_update
from bugqueue.services.report import bug_report
from labeling.models import Item
from labeling.services.ingestion import items_ingest
from tests.labeling.factories import UserFactory

_n = [0]


def report(project, user=None, **kw):
    """File a report (defaults: a user report with a unique title). Returns the FilingResult."""
    _n[0] += 1
    kw.setdefault("title", f"Bug number {_n[0]}")
    kw.setdefault("kind", "user_report")
    return bug_report(project=project, reporter=user or project.created_by, **kw)


def make_bug(project, user=None, **kw) -> Bug:
    return report(project, user, **kw).bug


def resolve(bug, user=None, resolution="fixed", **kw) -> Bug:
    return bug_resolve(bug=bug, actor=user or bug.project.created_by, resolution=resolution, **kw).bug


def update(bug, user=None, **kw) -> Bug:
    return bug_update(bug=bug, actor=user or bug.project.created_by, **kw)


def ingest_items(project, n, *, model_version="v1", label="pos", predicted_at=None, prefix="it"):
    """n items with a production prediction each; returns them in order."""
    predicted_at = predicted_at or timezone.now() - timedelta(days=3)
    items_ingest(project=project, rows=[
        {"external_id": f"{prefix}-{i}", "payload": {"text": f"text {i}"},
         "prediction": {"model_version": model_version, "label": label, "predicted_at": predicted_at.isoformat()}}
        for i in range(n)
    ])
    return list(Item.objects.filter(project=project, external_id__startswith=f"{prefix}-").order_by("id"))


__all__ = ["UserFactory", "report", "make_bug", "resolve", "update", "ingest_items"]
