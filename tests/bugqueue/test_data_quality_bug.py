"""The bug queue files data-quality alerts: one bug of kind data_quality per (field, check), opened
by the first failing batch and updated by the next ones (one occurrence per batch, its figures in
the history, example items as failures); the event carries the bug's id; the batch links the bug."""

import pytest

from alerts.models import Event
from bugqueue.models import Bug, BugEvent, BugKind, BugStatus
from bugqueue.services.bugs import bug_resolve
from bugqueue.services.data_quality import data_quality_fingerprint
from labeling.models import BatchProfile
from labeling.services.ingestion import items_ingest
from tests.labeling.data_check_batches import SHIFTED_CHECKS, batch_rows

pytestmark = pytest.mark.django_db


def _ingest(project, rows, capture):
    with capture(execute=True):
        return items_ingest(project=project, rows=rows)


def test_one_bug_per_field_and_check_filed_then_updated(project, user, django_capture_on_commit_callbacks):
    for seed in range(10):
        _ingest(project, batch_rows(seed), django_capture_on_commit_callbacks)
    assert not Bug.objects.filter(project=project).exists()

    first = _ingest(project, batch_rows(90, shifted=True), django_capture_on_commit_callbacks)
    bugs = Bug.objects.filter(project=project)
    assert {b.fingerprint for b in bugs} == {data_quality_fingerprint(field=f, check=c) for f, c in SHIFTED_CHECKS}
    assert all(b.kind == BugKind.DATA_QUALITY and b.occurrences == 1 for b in bugs)
    amount = bugs.get(fingerprint="data_quality:amount:numeric_shift")
    assert "amount" in amount.title and "observed" in amount.description
    example_ids = next(c for c in first.checks if c["field"] == "amount")["examples"]
    assert sorted(amount.failures.values_list("external_id", flat=True)) == sorted(example_ids)
    assert all(f.item_id for f in amount.failures.all())

    batch = BatchProfile.objects.filter(project=project).latest("id")
    assert batch.bug_ids == {f"{f}:{c}": bugs.get(fingerprint=f"data_quality:{f}:{c}").pk for f, c in SHIFTED_CHECKS}
    events = Event.objects.filter(project=project, type="data_quality.alert")
    assert events.count() == 3
    assert {e.data["bug_id"] for e in events} == set(bugs.values_list("pk", flat=True))

    # The next failing batch updates the same bugs: no new bug, one more occurrence each, its figures.
    _ingest(project, batch_rows(91, shifted=True, prefix="c"), django_capture_on_commit_callbacks)
    assert Bug.objects.filter(project=project).count() == 3
    amount.refresh_from_db()
    assert amount.occurrences == 2
    second = BatchProfile.objects.filter(project=project).latest("id")
    note = BugEvent.objects.get(bug=amount, field="data_quality")
    assert note.to_value == str(second.pk) and "would have fired" in note.note

    # A resolved data-quality bug reopens when the check fails again.
    bug_resolve(bug=amount, actor=user, resolution="fixed")
    _ingest(project, batch_rows(92, shifted=True, prefix="d"), django_capture_on_commit_callbacks)
    amount.refresh_from_db()
    assert amount.status == BugStatus.NEW and amount.regressed


def test_a_filing_failure_does_not_stop_the_event(project, monkeypatch, django_capture_on_commit_callbacks):
    from bugqueue.services import data_quality

    for seed in range(3):
        _ingest(project, batch_rows(seed), django_capture_on_commit_callbacks)
    monkeypatch.setattr(data_quality, "bug_file", lambda **kw: (_ for _ in ()).throw(RuntimeError("down")))
    result = _ingest(project, batch_rows(93, shifted=True), django_capture_on_commit_callbacks)
    assert result.checks
    assert not Bug.objects.filter(project=project).exists()
    assert Event.objects.filter(project=project, type="data_quality.alert").count() == len(result.checks)
