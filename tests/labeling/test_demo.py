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
