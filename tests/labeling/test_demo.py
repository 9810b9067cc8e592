"""The demo data (labeling.demo) loaded by `manage.py loupe_demo`."""

import io
from unittest import mock

import pytest
from django.db import connection

from labeling.models import (
    Annotation,
    Item,
    ItemStatus,
    QualityRun,
)
from labeling.tasks import quality_run_task


@pytest.mark.django_db
def test_demo_loader_is_idempotent_and_leaves_items_to_review():
    from django.core.management import call_command

    with mock.patch.object(quality_run_task, "delay"):
        call_command("loupe_demo", items=80, stdout=io.StringIO())
        call_command("loupe_demo", items=80, stdout=io.StringIO())
    runs = QualityRun.objects.all()
    assert runs.count() == 1 and runs[0].status == "done" and runs[0].scored == 40
    assert Annotation.objects.count() == 120
    assert Item.objects.filter(status=ItemStatus.DISPUTED).count() >= 3
    assert connection.vendor in ("postgresql", "sqlite")


@pytest.mark.django_db
def test_demo_shows_the_gate_loop():
    """The demo's models: v1 retired, v3 in production (it fixed the bugs; chat slice flagged), v2
    refused by the gate (regressions against v3 on the fixed bugs' tickets) and in shadow with live
    predictions beside production's."""
    from django.core.management import call_command

    from bugqueue.models import Dataset, EvaluationResult
    from bugqueue.services.gate import gate_check
    from labeling.models import ModelVersion, Prediction, Project

    with mock.patch.object(quality_run_task, "delay"):
        call_command("loupe_demo", items=300, stdout=io.StringIO())
    project = Project.objects.get()
    assert project.slice_fields == ["channel", "customer_tier"]
    (dataset,) = Dataset.objects.filter(project=project)
    assert dataset.gate
    stages = dict(ModelVersion.objects.filter(project=project).values_list("version", "stage"))
    assert stages == {"tickets-v1": "retired", "tickets-v2": "shadow", "tickets-v3": "production"}
    v3 = EvaluationResult.objects.filter(evaluation__model_version="tickets-v3", evaluation__source="upload").get()
    assert v3.passed and any("channel=chat" in w for w in v3.warnings), v3.warnings
    v2 = EvaluationResult.objects.filter(evaluation__model_version="tickets-v2").get()
    assert not v2.passed and v2.regressions > 0 and v2.baseline_model == "tickets-v3"
    assert not gate_check(project=project, model=ModelVersion.objects.get(version="tickets-v2"))[0]["passed"]
    live = Prediction.objects.filter(item__project=project)
    assert live.filter(model_version="tickets-v3").count() == live.filter(model_version="tickets-v1").count() > 0
    assert live.filter(model_version="tickets-v2").count() == live.filter(model_version="tickets-v1").count()
