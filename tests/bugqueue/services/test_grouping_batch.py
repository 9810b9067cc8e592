"""Batched filing under concurrency (PostgreSQL, real threads each on its own connection)."""

import random

import pytest

from bugqueue.models import Bug, BugEvent, BugOccurrence, FailureExample
from bugqueue.services.occurrences import occurrences_reconcile
from tests.bugqueue.factories import ingest_items, make_bug, resolve, run_threads
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory


@pytest.mark.services
def test_concurrent_batches_with_overlapping_fingerprints_make_one_bug_each(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    items = ingest_items(project, 20)
    closed = make_bug(project, user, title="was resolved", kind="other", fingerprint="fp-resolved")
    resolve(closed, user)
    fingerprints = [f"fp-{k}" for k in range(12)] + ["fp-resolved"]
    threads, batches, per_batch = 4, 4, 60
    answers = []

    def send(t):
        rng = random.Random(t)
        c = client_for(user)
        for _ in range(batches):
            rows = []
            for _ in range(per_batch):
                fp = rng.choice(fingerprints)
                rows.append(
                    {
                        "project": project.pk,
                        "title": f"title of {fp}",
                        "kind": "other",
                        "fingerprint": fp,
                        "failures": [{"external_id": rng.choice(items).external_id}],
                    }
                )
            rng.shuffle(rows)
            res = c.post("/api/bugs", rows, format="json")
            assert res.status_code == 200, res.content[:300]
            answers.append(res.json())

    run_threads(threads, send)
    reports = threads * batches * per_batch
    assert sum(len(a["results"]) for a in answers) == reports
    open_bugs = Bug.objects.filter(project=project, status__in=["new", "triaged", "in_progress"])
    assert sorted(open_bugs.values_list("fingerprint", flat=True)) == sorted(fingerprints)
    assert Bug.objects.filter(project=project).count() == len(fingerprints)  # the resolved one reopened
    closed.refresh_from_db()
    assert closed.regressed and BugEvent.objects.filter(bug=closed, field="regressed").count() == 1
    created = sum(a["counts"]["created"] for a in answers)
    assert created == len(fingerprints) - 1
    assert BugEvent.objects.filter(bug__project=project, field="created").count() == len(fingerprints)
    total = sum(Bug.objects.filter(project=project).values_list("occurrences", flat=True))
    assert total == reports + 1  # every failure counted once, plus the resolved bug's first report
    assert FailureExample.objects.filter(project=project).count() == reports
    assert BugOccurrence.objects.filter(bug__project=project).count() >= len(fingerprints)
    assert occurrences_reconcile(fix=False) == []
