"""Loupe emits its events where they happen: each service that owns a change emits the event after
commit, and the alerts app stores it (alerts.models.Event) with its type, key, path and data."""

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from alerts.models import Event
from bugqueue.models import Dataset
from bugqueue.services.datasets import Addition, dataset_create, dataset_version_create
from bugqueue.services.gate import model_promote
from common.errors import Conflict
from common.events import EVENT_TYPES, VERSION
from labeling.models import ModelVersion, QualityRun, Stage
from labeling.services import feedback as feedback_service
from labeling.services.export import export_request
from labeling.services.feedback import feedback_slo_check
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_runs_recover
from labeling.services.registry import model_register
from labeling.tasks import export_build
from tests.bugqueue.factories import ingest_items, make_bug, report, resolve, update
from tests.labeling import factories as lf
from tests.labeling.factories import crowd_project
from tests.labeling.services.quality.helpers import run_now

pytestmark = pytest.mark.django_db

BUG_FIELDS = {"bug_id", "title", "kind", "priority", "model_version", "tags"}


@pytest.fixture(autouse=True)
def no_routing():
    """The events are stored by the alerts receiver; routing them is another test's business."""
    with mock.patch("alerts.tasks.route_event.delay") as delay:
        yield delay


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a block and then its on-commit callbacks (where events are sent)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def events(type_, **filters):
    rows = list(Event.objects.filter(type=type_, **filters).order_by("id"))
    for e in rows:
        assert e.type in EVENT_TYPES and e.version == VERSION and e.subject
        assert json.loads(json.dumps(e.data)) == e.data  # plain JSON: no datetimes or decimals
    return rows


def test_nothing_is_sent_before_commit(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report(project)
    assert callbacks and not Event.objects.exists()


# --- bugs ----------------------------------------------------------------------------------------


def test_bug_created_once_per_bug(project, committed):
    with committed():
        bug = make_bug(project, title="Search returns nothing", kind="user_report", priority="p1")
    (event,) = events("bug.created")
    assert (event.project_id, event.key, event.path) == (project.pk, f"bug:{bug.pk}", f"/bugs/{bug.pk}")
    assert set(event.data) == BUG_FIELDS | {"occurrences"}
    assert event.data["bug_id"] == bug.pk and event.data["title"] == "Search returns nothing"
    assert (event.data["kind"], event.data["priority"], event.data["occurrences"]) == ("user_report", "p1", 1)
    assert str(bug.pk) in event.subject
    assert not events("bug.occurrences")  # a new bug is announced once, as created


def test_bug_occurrences_one_event_per_report_with_the_total_and_the_added(project, committed):
    items = ingest_items(project, 3)
    bug = make_bug(project, title="Wrong label")
    with committed():
        report(project, title="Wrong label", failures=[{"external_id": it.external_id} for it in items])
    (event,) = events("bug.occurrences")
    assert (event.key, event.path) == (f"bug:{bug.pk}", f"/bugs/{bug.pk}")
    assert set(event.data) == BUG_FIELDS | {"occurrences", "new"}
    assert (event.data["bug_id"], event.data["occurrences"], event.data["new"]) == (bug.pk, 4, 3)
    assert not events("bug.created", key=f"bug:{bug.pk}")


def test_bug_regressed_when_a_new_occurrence_reopens_a_resolved_bug(project, committed):
    bug = make_bug(project, title="Flaky classifier")
    resolve(bug)
    with committed():
        result = report(project, title="Flaky classifier")
    assert result.regressed
    (event,) = events("bug.regressed")
    assert (event.key, event.path) == (f"bug:{bug.pk}", f"/bugs/{bug.pk}")
    assert set(event.data) == BUG_FIELDS | {"occurrences"}
    assert event.data["bug_id"] == bug.pk and event.data["occurrences"] == 2
    assert events("bug.occurrences")[0].data["new"] == 1  # the occurrence that reopened it


def test_bug_status_changed_through_the_bug_service(project, user, committed):
    bug = make_bug(project)
    with committed():
        update(bug, user, status="triaged")
        update(bug, user, priority="p0")  # not a status change: no event
        resolve(bug, user, resolution="wont_fix")
    first, second = events("bug.status_changed")
    assert (first.key, first.path) == (f"bug:{bug.pk}", f"/bugs/{bug.pk}")
    assert set(first.data) == BUG_FIELDS | {"old", "new", "by"}
    assert (first.data["old"], first.data["new"], first.data["by"]) == ("new", "triaged", user.username)
    assert (second.data["old"], second.data["new"]) == ("triaged", "wont_fix")
    assert second.data["priority"] == "p0"


# --- the feedback-delay SLO ------------------------------------------------------------------------


def _slo(monkeypatch, breached, observed):
    monkeypatch.setattr(
        feedback_service,
        "feedback_slo_measure",
        lambda **kw: {"breached": breached, "observed_seconds": observed, "target_seconds": 86400, "quantile": 0.9},
    )


def test_slo_breached_only_on_a_change(project, monkeypatch, committed):
    _slo(monkeypatch, True, 200_000.0)
    with committed():
        feedback_slo_check(project_id=project.pk)
        feedback_slo_check(project_id=project.pk)  # still breached: no second event
    (event,) = events("slo.breached")
    assert (event.project_id, event.key, event.path) == (
        project.pk,
        "slo.feedback_delay",
        f"/projects/{project.pk}/delay",
    )
    assert event.data == {"quantile": 0.9, "observed_seconds": 200_000.0, "target_seconds": 86400}
    assert not events("slo.recovered")


def test_slo_recovered_only_on_a_change(project, monkeypatch, committed):
    _slo(monkeypatch, True, 200_000.0)
    feedback_slo_check(project_id=project.pk)
    _slo(monkeypatch, False, 7200.0)
    with committed():
        feedback_slo_check(project_id=project.pk)
        feedback_slo_check(project_id=project.pk)
    (event,) = events("slo.recovered")
    assert (event.key, event.path) == ("slo.feedback_delay", f"/projects/{project.pk}/delay")
    assert event.data == {"quantile": 0.9, "observed_seconds": 7200.0, "target_seconds": 86400}


# --- quality runs, exports -------------------------------------------------------------------------


def test_quality_run_finished_done_and_failed(committed):
    project, _ = crowd_project(k=3)
    with committed():
        done = run_now(project)
    with committed(), mock.patch.object(quality_service, "quality_snapshot_read", side_effect=RuntimeError("boom")):
        failed = run_now(project)
    assert (done.status, failed.status) == ("done", "failed")
    first, second = events("quality_run.finished")
    assert (first.key, first.path) == (f"quality_run:{done.pk}", f"/projects/{project.pk}/quality")
    assert first.data == {
        "run_id": done.pk,
        "status": "done",
        "scored": 0,
        "auto_accepted": 0,
        "to_review": 0,
        "error": "",
    }
    assert (second.key, second.data["status"], second.data["run_id"]) == (
        f"quality_run:{failed.pk}",
        "failed",
        failed.pk,
    )
    assert "RuntimeError: boom" in second.data["error"]


def test_quality_run_finished_when_the_sweep_fails_a_hung_run(committed):
    project, _ = crowd_project(k=3)
    hung = QualityRun.objects.create(project=project, status="running", started_at=timezone.now() - timedelta(hours=3))
    with committed(), mock.patch.object(quality_service, "_enqueue"):
        quality_runs_recover()
        quality_runs_recover()  # already failed: announced once
    (event,) = events("quality_run.finished")
    assert (event.key, event.data["run_id"], event.data["status"]) == (f"quality_run:{hung.pk}", hung.pk, "failed")
    assert "TIMEOUT" in event.data["error"]


def test_export_finished_done_and_failed(project, user, monkeypatch, committed):
    lf.resolve(project, lf.make_items(project, 3))
    export, _ = export_request(project=project, actor=user, format="csv")
    monkeypatch.setattr(default_storage, "save", mock.Mock(side_effect=OSError("disk full")))
    with committed(), pytest.raises(OSError):
        export_build(export.pk)
    monkeypatch.undo()
    with committed():
        export_build(export.pk)
    failed, done = events("export.finished")
    assert (done.key, done.path) == (f"export:{export.pk}", f"/projects/{project.pk}/export")
    assert (failed.data["status"], failed.data["rows"]) == ("failed", None) and "disk full" in failed.data["error"]
    assert {k: done.data[k] for k in ("export_id", "status", "rows", "format", "error")} == {
        "export_id": export.pk,
        "status": "done",
        "rows": 3,
        "format": "csv",
        "error": "",
    }
    assert set(done.data) == {
        "export_id",
        "status",
        "rows",
        "format",
        "compact",
        "since_seq",
        "until_seq",
        "byte_size",
        "error",
    }


# --- datasets and the promotion gate ---------------------------------------------------------------


def test_dataset_version_created(project, user, committed):
    items = ingest_items(project, 4)
    dataset = dataset_create(project=project, actor=user, name="core")
    with committed():
        dataset_version_create(dataset_id=dataset.pk, actor=user, add=[Addition(it.pk, "pos") for it in items])
        dataset_version_create(dataset_id=dataset.pk, actor=user, add=[Addition(items[0].pk, "pos")])  # no change
    (event,) = events("dataset.version_created")
    assert (event.key, event.path) == (f"dataset:{dataset.pk}", f"/projects/{project.pk}/datasets#dataset-{dataset.pk}")
    assert event.data == {
        "dataset_id": dataset.pk,
        "name": "core",
        "version": 1,
        "items": 4,
        "added": 4,
        "removed": 0,
        "relabeled": 0,
        "reason": "manual",
        "bug_id": None,
    }


def test_evaluation_gate_failed_when_promotion_is_refused_or_overridden(project, user, committed):

    dataset = Dataset.objects.create(project=project, name="regressions", gate=True, latest_version=8)
    model_register(project=project, actor=user, version="v5")
    with committed(), pytest.raises(Conflict):
        model_promote(project=project, actor=user, version="v5", stage="production")
    assert ModelVersion.objects.get(project=project, version="v5").stage == Stage.CANDIDATE
    (refused,) = events("evaluation.gate_failed")
    assert (refused.key, refused.path) == ("model:v5", f"/projects/{project.pk}/models")
    assert refused.data == {
        "model_version": "v5",
        "stage": "production",
        "evaluation_id": None,
        "failures": [
            {
                "dataset": dataset.pk,
                "name": "regressions",
                "version": 8,
                "evaluation": None,
                "reasons": ["not evaluated on v8"],
            }
        ],
        "overridden": False,
        "override_reason": "",
    }
    with committed():
        model_promote(project=project, actor=user, version="v5", stage="production", override_reason="hotfix")
    overridden = events("evaluation.gate_failed")[1]
    assert overridden.data["overridden"] is True and overridden.data["override_reason"] == "hotfix"
    with committed():
        model_promote(project=project, actor=user, version="v5", stage="shadow")  # not gated: no event
    assert len(events("evaluation.gate_failed")) == 2
