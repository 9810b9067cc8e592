"""Concurrency on PostgreSQL: annotators submitting (disputes start automatic quality runs) while
runs end (and start the next one) never lose a submission: the locks are taken in one order
(labeling.services), and a submit that still meets a deadlock is re-run whole."""

import random
import threading
import time
from unittest import mock

import pytest
from django.db import connection

from labeling.models import Annotation, QualityRun, QualityRunStatus, QualitySettings
from labeling.services.annotations import annotation_submit
from labeling.services.quality import runs as quality_service
from labeling.services.queue.claim import assignment_claim_next
from tests.faults import deadlock_once
from tests.labeling.factories import annotators, crowd_project

ANNOTATORS = 8
SUBMITS_EACH = 25


@pytest.mark.django_db(transaction=True)
def test_every_submit_is_stored_while_runs_end_and_start(postgres_tx):
    project, _ = crowd_project(k=2, annotations_per_item=2)
    users = annotators(project, ANNOTATORS)
    # Every disputed item asks for a run: the settings row and the run table are hit on most submits.
    QualitySettings.objects.create(project=project, auto_run_after_disputed=1)
    project.items.bulk_create(
        [
            project.items.model(project=project, external_id=f"i{i}", required_annotations=2)
            for i in range(ANNOTATORS * SUBMITS_EACH)
        ]
    )
    stored, errors = [], []
    done = threading.Event()
    start = threading.Barrier(ANNOTATORS + 1)

    def annotator(n, user):
        rng = random.Random(n)
        try:
            start.wait()
            for _ in range(SUBMITS_EACH):
                claim = assignment_claim_next(project=project, annotator=user)
                if claim is None:
                    break
                outcome = annotation_submit(
                    assignment_id=claim.assignment_id, annotator=user, label=rng.choice(["c0", "c1"])
                )
                stored.append(outcome.annotation.pk)
        except Exception as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(repr(exc))
        finally:
            connection.close()

    def run_ender():
        """What the end of a run does (labeling.services.quality.runs._finish): mark it done, then request
        the next one when disputes reached the threshold meanwhile."""
        ended = 0
        try:
            start.wait()
            while not done.is_set():
                run = QualityRun.objects.filter(project=project, status=QualityRunStatus.QUEUED).first()
                if run is None or quality_service._claim(run.pk) is None:
                    time.sleep(0.001)
                    continue
                quality_service._finish(quality_service.QualityRun.objects.get(pk=run.pk), time.perf_counter(), {})
                ended += 1
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            connection.close()
        return ended

    with mock.patch.object(quality_service, "_enqueue"):  # no broker: the ender thread plays the worker
        threads = [threading.Thread(target=annotator, args=(n, u)) for n, u in enumerate(users)]
        ender = threading.Thread(target=run_ender)
        for t in [*threads, ender]:
            t.start()
        for t in threads:
            t.join()
        done.set()
        ender.join()

    assert errors == []
    assert len(stored) == ANNOTATORS * SUBMITS_EACH
    assert Annotation.objects.filter(project=project).count() == len(stored)
    assert QualityRun.objects.filter(project=project, status=QualityRunStatus.DONE).count() > 1


@pytest.mark.django_db(transaction=True)
def test_a_submit_aborted_by_a_deadlock_is_run_again_whole(monkeypatch):
    """The database rolled the first attempt back (nothing of it is kept); the second one stores it."""
    from django.db import OperationalError

    from labeling.services import annotations as annotations_service

    project, _ = crowd_project(k=2, annotations_per_item=1)
    (user,) = annotators(project, 1)
    project.items.create(external_id="a", required_annotations=1)
    claim = assignment_claim_next(project=project, annotator=user)
    calls = []
    monkeypatch.setattr(annotations_service, "item_settle", deadlock_once(annotations_service.item_settle, calls))
    outcome = annotation_submit(assignment_id=claim.assignment_id, annotator=user, label="c0")
    assert len(calls) == 2 and outcome.completed
    assert Annotation.objects.filter(item__project=project).count() == 1

    # Other database errors are not retried.
    monkeypatch.setattr(
        annotations_service, "item_settle", lambda **kw: (_ for _ in ()).throw(OperationalError("disk"))
    )
    project.items.create(external_id="b", required_annotations=1)
    claim = assignment_claim_next(project=project, annotator=user)
    with pytest.raises(OperationalError):
        annotation_submit(assignment_id=claim.assignment_id, annotator=user, label="c0")
    assert Annotation.objects.filter(item__project=project).count() == 1
