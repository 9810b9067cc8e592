"""Data-quality checks on ingestion: every batch is stored and profiled; the first ones only learn;
a batch within normal variation passes; a shifted one comes back with its failed checks, in the API
answer too, and emits one data_quality.alert per (field, check). A check never refuses a batch."""

import json

import pytest

from common.events import event_emitted
from labeling.models import BatchCheckStatus, BatchProfile, Item
from labeling.services import data_checks
from labeling.services.ingestion import items_ingest
from tests.conftest import client_for
from tests.labeling.data_check_batches import SHIFTED_CHECKS, batch_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    got = []

    def receiver(sender, **kwargs):
        got.append(kwargs)

    event_emitted.connect(receiver, dispatch_uid="test.data_checks")
    yield got
    event_emitted.disconnect(dispatch_uid="test.data_checks")


def _learn(project, n=5):
    for seed in range(n):
        items_ingest(project=project, rows=batch_rows(seed))


def test_first_batches_only_learn_and_every_batch_is_stored(project, events, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = items_ingest(project=project, rows=batch_rows(99, shifted=True))
        assert result.checks == ()
        _learn(project, 2)
    assert (
        list(BatchProfile.objects.filter(project=project).order_by("id").values_list("status", flat=True))
        == [BatchCheckStatus.LEARNING] * 3
    )
    assert Item.objects.filter(project=project).count() == 600
    assert events == []


def test_normal_batches_pass(project, events, django_capture_on_commit_callbacks):
    _learn(project)
    with django_capture_on_commit_callbacks(execute=True):
        for seed in range(50, 55):
            assert items_ingest(project=project, rows=batch_rows(seed)).checks == ()
    assert set(BatchProfile.objects.filter(project=project).order_by("id").values_list("status", flat=True)[5:]) == {
        BatchCheckStatus.OK
    }
    assert events == []


def test_shifted_batch_is_stored_and_reports_its_checks(project, events, django_capture_on_commit_callbacks):
    _learn(project)
    with django_capture_on_commit_callbacks(execute=True):
        result = items_ingest(project=project, rows=batch_rows(99, shifted=True))
    assert result.created == 200
    assert {(c["field"], c["check"]) for c in result.checks} == SHIFTED_CHECKS
    for c in result.checks:
        assert c["of_last"] == 5 and c["would_have_fired"] == 0 and c["expected"] and c["observed"]
        assert c["examples"] and all(e.startswith("b99-") for e in c["examples"])
    record = BatchProfile.objects.filter(project=project).latest("id")
    assert record.status == BatchCheckStatus.FAILED and record.rows == 200
    fax = next(c for c in result.checks if c["check"] == "category_shift")
    assert Item.objects.get(project=project, external_id=fax["examples"][0]).payload["channel"] == "fax"
    alerts = [e for e in events if e["type"] == "data_quality.alert"]
    assert sorted(e["key"] for e in alerts) == sorted(f"data_quality:{f}:{c}" for f, c in SHIFTED_CHECKS)
    for e in alerts:
        assert e["data"]["batch"] == record.pk and len(e["data"]["checks"]) == 1
        assert set(e["data"]["checks"][0]) == {"field", "check", "observed", "expected"}
        assert e["path"] == f"/projects/{project.pk}/#data-checks"


def test_a_failing_check_never_loses_the_batch(project, monkeypatch):
    _learn(project, 3)

    def broken(*a, **kw):
        raise RuntimeError("profile exploded")

    monkeypatch.setattr(data_checks, "profile_batch", broken)
    result = items_ingest(project=project, rows=batch_rows(7, prefix="z"))
    assert result.created == 200 and result.checks == ()
    assert Item.objects.filter(project=project, external_id__startswith="z").count() == 200


def test_small_batches_are_recorded_not_checked_nor_reference(project):
    _learn(project, 3)
    items_ingest(project=project, rows=batch_rows(8, n=5, shifted=True))
    assert BatchProfile.objects.filter(project=project).latest("id").status == BatchCheckStatus.SKIPPED
    assert items_ingest(project=project, rows=batch_rows(9)).checks == ()


def test_the_api_answer_lists_the_checks(user, project):
    c = client_for(user)
    url = f"/api/projects/{project.id}/items"
    for seed in range(4):
        res = c.post(url, json.dumps(batch_rows(seed)), content_type="application/json")
        assert res.status_code == 201 and res.json()["checks"] == []
    res = c.post(url, json.dumps(batch_rows(99, shifted=True)), content_type="application/json")
    assert res.status_code == 201, res.json()
    body = res.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (200, 0, 0)
    assert {(ch["field"], ch["check"]) for ch in body["checks"]} == SHIFTED_CHECKS
    assert {"observed", "expected", "would_have_fired", "of_last", "examples"} <= set(body["checks"][0])
    # Re-sending the shifted batch (new prediction times): stored, answered 200, checked again.
    res = c.post(url, json.dumps(batch_rows(99, shifted=True)), content_type="application/json")
    assert res.status_code == 200 and res.json()["created"] == 0 and res.json()["checks"]


def test_project_page_shows_the_card(user, project, client, django_capture_on_commit_callbacks):
    _learn(project, 3)
    with django_capture_on_commit_callbacks(execute=True):
        items_ingest(project=project, rows=batch_rows(99, shifted=True))
    client.force_login(user)
    html = client.get(f"/projects/{project.pk}/").content.decode()
    assert 'id="data-checks"' in html
    assert "category_shift" in html and "1 failed" in html
    assert "/bugs/" in html  # the bug queue filed the bugs and linked them to the batch


def test_a_type_change_alerts_with_rows_of_the_new_type(project):
    _learn(project, 3)
    rows = batch_rows(11, prefix="t")
    for r in rows[:150]:
        r["payload"]["amount"] = "n/a"
    result = items_ingest(project=project, rows=rows)
    (check,) = [c for c in result.checks if c["check"] == "type_change"]
    assert check["field"] == "amount" and check["observed"] == {"type": "mixed"}
    assert check["expected"] == {"type": "number"}
    assert check["examples"] == [f"t11-{i}" for i in range(5)]
