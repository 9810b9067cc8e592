"""The quality settings form answers bad input in its labels' words, next to the field, keeping what was typed."""

import pytest
from django.test import Client

from labeling.models import QualitySettings
from tests.labeling.factories import PASSWORD, crowd_project


def _auto_run(project):
    row = QualitySettings.objects.filter(project=project).first()
    return row.auto_run_after_disputed if row else None


@pytest.fixture
def manager_client(db):
    project, manager = crowd_project(k=3, accept_mode="calibrated", max_annotations_per_item=3)
    c = Client()
    assert c.login(username=manager.username, password=PASSWORD)
    return project, c


def test_not_a_whole_number_is_said_in_words_and_kept_in_the_field(manager_client):
    project, c = manager_client
    res = c.post(f"/projects/{project.pk}/quality/settings", {"auto_run_after_disputed": "twelve"})
    page = res.content.decode()
    assert res.status_code == 400
    assert "Run automatically after: enter a whole number of disputed items" in page
    assert "must be an integer" not in page
    field = page[page.index('id="auto-run"') : page.index(">", page.index('id="auto-run"'))]
    assert 'value="twelve"' in field and 'aria-invalid="true"' in field and 'aria-describedby="auto-run-error"' in field
    assert 'id="auto-run-error"' in page
    assert _auto_run(project) in (None, 25)  # nothing changed


def test_out_of_range_values_name_the_field_in_words(manager_client):
    project, c = manager_client
    url = f"/projects/{project.pk}/quality/settings"
    res = c.post(url, {"auto_run_after_disputed": "-3"})
    assert res.status_code == 400 and b"Run automatically after: enter a whole number" in res.content
    assert b'value="-3"' in res.content
    res = c.post(url, {"auto_run_after_disputed": "7", "max_accept_error": "0.9"})
    assert res.status_code == 400 and b"Target error: enter a number from 0.001 to 0.5" in res.content
    assert b'value="0.9"' in res.content and b'value="7"' in res.content
    res = c.post(url, {"auto_run_after_disputed": "7", "audit_rate": "lots"})
    assert res.status_code == 400 and b"Audit rate: enter a number" in res.content
    project.refresh_from_db()
    assert project.max_accept_error == 0.02
    assert _auto_run(project) in (None, 25)


def test_a_good_value_saves_and_redirects(manager_client):
    project, c = manager_client
    res = c.post(f"/projects/{project.pk}/quality/settings", {"auto_run_after_disputed": "7"})
    assert res.status_code == 302
    assert QualitySettings.objects.get(project=project).auto_run_after_disputed == 7
