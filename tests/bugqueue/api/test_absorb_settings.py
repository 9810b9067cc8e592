"""The bug-settings API's dataset batching and slice threshold, and a flow's conflict count."""

import pytest

from bugqueue.models import BugProjectSettings, Dataset, FailureExample
from bugqueue.services.datasets import bug_datasets_flow_run, bug_datasets_flow_start
from labeling.models import Role
from tests.bugqueue.factories import failing_bug, label, make_items
from tests.conftest import client_for
from tests.labeling.factories import add_member

pytestmark = pytest.mark.django_db


def test_bug_settings_read_and_change_batching_and_slice_threshold(user, project):
    c = client_for(user)
    url = f"/api/projects/{project.pk}/bug-settings"
    assert c.get(url).json() == {
        "project": project.pk,
        "auto_file_failed_predictions": True,
        "dataset_batch_seconds": 600,
        "slice_drop_threshold": 0.05,
        "absorb_due_at": None,
    }
    res = c.patch(url, {"dataset_batch_seconds": 0, "slice_drop_threshold": 0.1}, format="json")
    assert res.status_code == 200, res.json()
    body = res.json()
    assert (body["dataset_batch_seconds"], body["slice_drop_threshold"], body["auto_file_failed_predictions"]) == (
        0,
        0.1,
        True,
    )
    row = BugProjectSettings.objects.get(pk=project.pk)
    assert (row.dataset_batch_seconds, row.slice_drop_threshold) == (0, 0.1)
    assert c.patch(url, {"dataset_batch_seconds": 86400}, format="json").json()["dataset_batch_seconds"] == 86400


@pytest.mark.parametrize(
    "body, field",
    [
        ({"dataset_batch_seconds": -1}, "dataset_batch_seconds"),
        ({"dataset_batch_seconds": 86401}, "dataset_batch_seconds"),
        ({"dataset_batch_seconds": "soon"}, "dataset_batch_seconds"),
        ({"dataset_batch_seconds": 1.5}, "dataset_batch_seconds"),
        ({"slice_drop_threshold": 1.5}, "slice_drop_threshold"),
        ({"slice_drop_threshold": -0.1}, "slice_drop_threshold"),
        ({"slice_drop_threshold": "NaN"}, "slice_drop_threshold"),
        ({"dataset_batch_seconds": 30, "slice_drop_threshold": 2}, "slice_drop_threshold"),
    ],
)
def test_bad_settings_are_400_and_change_nothing(user, project, body, field):
    c = client_for(user)
    res = c.patch(f"/api/projects/{project.pk}/bug-settings", body, format="json")
    assert res.status_code == 400, res.json()
    assert field in res.json()["error"]["fields"]
    row = BugProjectSettings.objects.filter(pk=project.pk).first()
    assert row is None or (row.dataset_batch_seconds, row.slice_drop_threshold) == (600, 0.05)


def test_only_managers_change_batching(project):
    annotator = add_member(project, role=Role.ANNOTATOR)
    res = client_for(annotator).patch(
        f"/api/projects/{project.pk}/bug-settings", {"dataset_batch_seconds": 0}, format="json"
    )
    assert res.status_code == 403


def test_service_refuses_out_of_range_values(user, project):
    from bugqueue.services.bug_settings import bug_settings_update
    from common.errors import ValidationFailed

    for kw in ({"dataset_batch_seconds": 86401}, {"dataset_batch_seconds": True}, {"slice_drop_threshold": 1.01}):
        with pytest.raises(ValidationFailed):
            bug_settings_update(project=project, actor=user, **kw)
    row = bug_settings_update(project=project, actor=user, dataset_batch_seconds=5)
    assert (row.dataset_batch_seconds, row.auto_file_failed_predictions) == (5, True)


def test_flow_reports_its_conflicts(user, project):
    ds = Dataset.objects.create(project=project, name="core")
    disputed, agreeing = make_items(project, 2, prefix="f")
    label([disputed, agreeing], "neg")
    bug = failing_bug(project, failures=[(disputed, "pos"), (agreeing, "neg")])
    FailureExample.objects.filter(bug=bug).update(predicted_label="neg")
    flow = bug_datasets_flow_start(bug=bug, actor=user, dataset_ids=[ds.pk])
    bug_datasets_flow_run(flow_id=flow.pk)
    (row,) = client_for(user).get(f"/api/bugs/{bug.pk}/dataset-flows").json()
    assert (row["added"], row["conflicts"], row["pending"]) == (1, 1, 0)
