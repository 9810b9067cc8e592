"""Migration 0025: projects that existed before the calibrated accept rule keep their raw threshold."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("labeling", "0024_registry_slices")]
AFTER = [("labeling", "0025_accept_calibration")]


@pytest.mark.django_db(transaction=True)
def test_existing_projects_become_raw_score_and_new_ones_calibrated():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    OldProject = old_apps.get_model("labeling", "Project")
    old = OldProject.objects.create(name="before", accept_threshold=0.6)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new_apps = executor.loader.project_state(AFTER).apps
    Project = new_apps.get_model("labeling", "Project")
    got = Project.objects.get(pk=old.pk)
    assert (got.accept_mode, got.accept_threshold, got.max_accept_error, got.audit_rate) == (
        "raw_score",
        0.6,
        0.02,
        0.02,
    )
    assert Project.objects.create(name="after").accept_mode == "calibrated"

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to the latest state for the other tests
