"""On call end to end, as a team would run it: a webhook receiver of ours on 127.0.0.1 that verifies
every signature, fails the first deliveries on purpose and counts duplicates; one rule (through the
API) on regressions, SLO breaches and data-quality alerts; a bug that regresses, a feedback-delay SLO
that breaks, a shifted batch and a batch within normal variation; acknowledge and snooze through the
API. Celery runs in-process; a failed delivery is retried when its time comes (the sweep)."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, Delivery, DeliveryStatus, Event
from alerts.services.delivery import deliveries_sweep
from labeling.services import feedback as feedback_service
from labeling.services.feedback import feedback_slo_check
from tests.bugqueue.factories import make_bug, report, resolve
from tests.conftest import client_for
from tests.labeling.data_check_batches import SHIFTED_CHECKS, batch_rows

pytestmark = pytest.mark.django_db(transaction=True)


def verified(receiver, secret):
    """Every request's signature checked as a receiver would; returns the parsed bodies."""
    bodies = []
    for _, headers, raw in receiver.requests:
        ts = headers["X-Loupe-Timestamp"]
        want = "sha256=" + hmac.new(secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Loupe-Signature"], want)
        assert abs(int(ts) - timezone.now().timestamp()) < 300  # fresh: a replay of an old one would fail
        body = json.loads(raw)
        assert headers["X-Loupe-Event"] == body["type"]
        bodies.append(body)
    return bodies


def retry_due():
    """Time passes: every failed delivery is due again, and the sweep sends it."""
    Delivery.objects.filter(status=DeliveryStatus.FAILED).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    deliveries_sweep()


def test_alerts_reach_a_signed_webhook_and_people_can_acknowledge_and_snooze(
    eager_celery, receiver, settings, monkeypatch, project, user
):
    settings.LOUPE_BASE_URL = "http://loupe.test"
    manager = user  # the project's creator manages it
    c = client_for(manager)
    res = c.post(
        f"/api/projects/{project.pk}/channels",
        {"name": "ours", "kind": "webhook", "url": receiver.url},
        content_type="application/json",
    )
    assert res.status_code == 201, res.content
    channel, secret = res.json()["id"], res.json()["secret"]
    res = c.post(
        f"/api/projects/{project.pk}/alert-rules",
        {
            "name": "wake me",
            "event_types": ["bug.regressed", "slo.breached", "data_quality.alert"],
            "channels": [channel],
        },
        content_type="application/json",
    )
    assert res.status_code == 201, res.content
    receiver.fail_first = 2

    # A bug regresses: the first delivery fails (500) and is retried later.
    bug = make_bug(project, title="Refund tickets labelled billing")
    resolve(bug)
    assert report(project, title="Refund tickets labelled billing").regressed
    # The feedback-delay SLO breaks: the second delivery fails too.
    monkeypatch.setattr(
        feedback_service,
        "feedback_slo_measure",
        lambda **kw: {"breached": True, "observed_seconds": 200_000.0, "target_seconds": 86400, "quantile": 0.9},
    )
    feedback_slo_check(project_id=project.pk)
    assert len(receiver.requests) == 2
    assert Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 2

    # Batches: four normal ones (learning, then within normal variation), then a shifted one.
    for seed in range(5):
        res = c.post(f"/api/projects/{project.pk}/items", json.dumps(batch_rows(seed)), content_type="application/json")
        assert res.status_code == 201 and res.json()["checks"] == []
    assert not Event.objects.filter(type="data_quality.alert").exists()
    res = c.post(
        f"/api/projects/{project.pk}/items", json.dumps(batch_rows(99, shifted=True)), content_type="application/json"
    )
    assert {(ch["field"], ch["check"]) for ch in res.json()["checks"]} == SHIFTED_CHECKS
    retry_due()

    # Every alert was delivered once; the failed ones on their retry; no duplicate got through.
    alerts = list(Alert.objects.filter(project=project).select_related("event"))
    assert sorted(a.event.type for a in alerts) == sorted(
        ["bug.regressed", "slo.breached"] + ["data_quality.alert"] * len(SHIFTED_CHECKS)
    )
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    counts = receiver.by_delivery()
    assert len(counts) == len(alerts) and sum(counts.values()) == len(alerts) + 2
    bodies = verified(receiver, secret)
    delivered = {b["data"].get("bug_id") for b in bodies if b["type"] == "bug.regressed"}
    assert delivered == {bug.pk}
    regression = next(b for b in bodies if b["type"] == "bug.regressed")
    assert regression["url"] == f"http://loupe.test/bugs/{bug.pk}" and regression["version"] == 1
    assert regression["alert"]["acknowledge_url"].startswith("http://loupe.test/")
    log = c.get(f"/api/projects/{project.pk}/channels/{channel}/deliveries").json()
    codes = [a["status_code"] for d in log["results"] for a in d["log"]]
    assert codes.count(500) == 2 and codes.count(200) == len(alerts)

    # Acknowledge the SLO alert; snooze the regression for its next 2 occurrences.
    slo = next(a for a in alerts if a.event.type == "slo.breached")
    assert c.post(f"/api/alerts/{slo.pk}/acknowledge").status_code == 200
    slo.refresh_from_db()
    assert (slo.status, slo.action) == ("acknowledged", "acknowledged")
    regressed = next(a for a in alerts if a.event.type == "bug.regressed")
    res = c.post(f"/api/alerts/{regressed.pk}/snooze", {"occurrences": 2}, content_type="application/json")
    assert res.status_code == 200, res.content
    sent = len(receiver.requests)
    for _ in range(3):
        resolve(bug)
        assert report(project, title="Refund tickets labelled billing").regressed
    later = list(Alert.objects.filter(key=f"bug:{bug.pk}").order_by("id"))[1:]
    assert [a.delivery for a in later] == ["suppressed", "suppressed", "immediate"]
    assert len(receiver.requests) == sent + 1
