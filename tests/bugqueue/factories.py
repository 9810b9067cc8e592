"""Bug-queue test helpers: bugs are made through the services, so every invariant holds (except
`failing_bug`, a bug written directly with its failures, for the dataset tests)."""

import threading
from datetime import timedelta

from django.db import connections
from django.utils import timezone

from bugqueue.models import Bug, FailureExample, Tag
from bugqueue.services.bugs import bug_resolve, bug_update
from bugqueue.services.report import bug_report
from labeling.models import Item
from labeling.services.ground_truth import ground_truth_set
from labeling.services.ingestion import items_ingest
from tests.labeling.factories import UserFactory

_n = [0]


def spelled(n: int) -> str:
    """A number in letters (3 -> "d"): numbers do not tell titles apart (grouping ignores them)."""
    return "".join("abcdefghij"[int(d)] for d in str(n))


def report(project, user=None, **kw):
    """File a report (defaults: a user report with a unique title). Returns the FilingResult."""
    _n[0] += 1
    kw.setdefault("title", "Bug " + spelled(_n[0]))
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
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": f"{prefix}-{i}",
                "payload": {"text": f"text {i}"},
                "prediction": {
                    "model_version": model_version,
                    "label": label,
                    "predicted_at": predicted_at.isoformat(),
                },
            }
            for i in range(n)
        ],
    )
    return list(Item.objects.filter(project=project, external_id__startswith=f"{prefix}-").order_by("id"))


# --- datasets ---------------------------------------------------------------------------------
def make_items(project, n, prefix="it", text="sample"):
    """n items without predictions, in order."""
    items_ingest(
        project=project, rows=[{"external_id": f"{prefix}{i}", "payload": {"text": f"{text} {i}"}} for i in range(n)]
    )
    return list(Item.objects.filter(project=project, external_id__startswith=prefix).order_by("id"))


def label(items, value="pos"):
    """Ground truth `value` for each item."""
    for it in items:
        ground_truth_set(item=it, label=value, method="imported")


def failing_bug(project, title="flip", tags=(), failures=()):
    """A bug written directly (no report): `failures` are (item, expected label or None)."""
    now = timezone.now()
    bug = Bug.objects.create(
        project=project,
        title=title,
        kind="failed_prediction",
        fingerprint=f"fp-{title}",
        first_seen=now,
        last_seen=now,
        occurrences=len(failures),
    )
    bug.tags.set(Tag.objects.filter(slug__in=tags))
    for item, expected in failures:
        FailureExample.objects.create(
            bug=bug,
            project=project,
            item=item,
            external_id=item.external_id,
            model_version="m1",
            predicted_label="neg",
            expected_label=expected,
        )
    return bug


def new_dataset(client, project, **kw):
    """A dataset created through the API; its JSON."""
    res = client.post("/api/datasets", {"project": project.id, "name": kw.pop("name", "core"), **kw}, format="json")
    assert res.status_code == 201, res.json()
    return res.json()


# --- concurrency --------------------------------------------------------------------------------
def run_threads(n, target):
    """Run target(i) for i < n in n threads started together (each with its own connection); fail
    with every exception raised."""
    errors, barrier = [], threading.Barrier(n)

    def wrapper(i):
        try:
            barrier.wait(timeout=30)
            target(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


__all__ = [
    "UserFactory",
    "report",
    "make_bug",
    "resolve",
    "update",
    "ingest_items",
    "make_items",
    "label",
    "failing_bug",
    "new_dataset",
    "run_threads",
]
