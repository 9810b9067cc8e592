"""Broker down: a write that committed answers as usual (its task message is owed, not lost), without
hanging the request; once the broker is back, the work sweep sends every owed message."""

import os
import signal
import time

import pytest

from labeling.models import DeferredTask, Export, Item, QualityRun
from labeling.services.sweep import work_sweep
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, make_items, resolve
from tests.private_broker import PrivateRedis, celery_on

# What a request may spend on a broker that does not answer (connect timeout, one retry), with room
# for a loaded test machine.
BOUND_SECONDS = 8


@pytest.fixture
def broker():
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


def timed(call):
    started = time.monotonic()
    res = call()
    return res, time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_writes_succeed_with_the_broker_down_and_the_sweep_sends_their_tasks_when_it_is_back(broker, settings):
    settings.LOUPE_WORK_RESEND_SECONDS = 0  # queued work counts as "not picked up" at once in this test
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    resolve(project, make_items(project, 5))
    api = client_for(manager)
    base = f"/api/projects/{project.pk}"
    with celery_on(broker.url):
        broker.stop()

        run, t_run = timed(lambda: api.post(f"{base}/quality-runs", {}, format="json"))
        export, t_export = timed(lambda: api.post(f"{base}/exports", {"format": "csv"}, format="json"))
        items, t_items = timed(
            lambda: api.post(f"{base}/items", [{"external_id": "new-1", "payload": {"text": "x"}}], format="json")
        )
        patch, t_patch = timed(lambda: api.patch(base, {"queue_order": "priority"}, format="json"))

        assert (run.status_code, export.status_code, items.status_code, patch.status_code) == (202, 202, 201, 200), (
            run.content,
            export.content,
            items.content,
            patch.content,
        )
        assert max(t_run, t_export, t_items, t_patch) < BOUND_SECONDS, (t_run, t_export, t_items, t_patch)
        run_id, export_id = run.json()["id"], export.json()["id"]
        assert QualityRun.objects.get(pk=run_id).status == "queued"
        assert Export.objects.get(pk=export_id).status == "pending"
        assert Item.objects.filter(project=project, external_id="new-1").exists()
        assert patch.json()["queue_order"] == "priority"
        # A retry sees the committed write, as the row is the record.
        assert api.post(f"{base}/quality-runs", {}, format="json").status_code == 409
        owed = {(name, tuple(args)) for name, args in DeferredTask.objects.values_list("task_name", "args")}
        assert ("loupe.similarity_index_update", (project.pk,)) in owed
        assert ("loupe.queue_order_rekey", (project.pk,)) in owed

        # Still down: the sweep sends nothing, loses nothing, and does not wait long either.
        result, t_sweep = timed(work_sweep)
        assert result["deferred_sent"] == 0 and DeferredTask.objects.count() == len(owed)
        assert t_sweep < BOUND_SECONDS

        broker.start()  # the same port, empty
        result = work_sweep()

    sent = broker.queued_tasks()
    print(
        f"\nbroker down: quality-runs {t_run:.2f} s, exports {t_export:.2f} s, items {t_items:.2f} s, "
        f"PATCH {t_patch:.2f} s, sweep {t_sweep:.2f} s"
    )
    assert ("loupe.quality_run", repr((run_id,))) in sent
    assert ("loupe.export_build", repr((export_id,))) in sent
    assert ("loupe.similarity_index_update", repr((project.pk,))) in sent
    assert ("loupe.queue_order_rekey", repr((project.pk,))) in sent
    assert result["deferred_sent"] == len(owed) and not DeferredTask.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_hung_broker_does_not_hang_the_request(broker):
    """A broker that accepts connections but never answers (stopped with SIGSTOP) costs a request a
    bounded wait (socket timeout, one retry), then the request answers as usual."""
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    api = client_for(manager)
    with celery_on(broker.url):
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            res, took = timed(lambda: api.post(f"/api/projects/{project.pk}/quality-runs", {}, format="json"))
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
    assert res.status_code == 202 and QualityRun.objects.get(pk=res.json()["id"]).status == "queued"
    assert took < 2 * BOUND_SECONDS, took
    print(f"\nhung broker: POST quality-runs answered 202 in {took:.2f} s")
