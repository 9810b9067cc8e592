import gzip
import json

import pytest

from labeling.models import Export, Role
from labeling.services.ground_truth import ground_truth_set
from tests.browser.conftest import login
from tests.labeling.factories import ItemFactory, ProjectFactory, UserFactory, add_member, make_items, resolve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def eager_tasks(settings, tmp_path, eager_celery):
    """Celery tasks run in-process for this test only (tests/conftest.py eager_celery, restored
    afterwards); files go to a temporary media directory."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_new_snapshot_button_builds_an_export_that_downloads(page, live_server, eager_tasks):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    resolve(project, make_items(project, 25))
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/export")
    assert "No snapshots yet" in page.locator("#exports .empty").inner_text()
    assert page.locator("#project-tabs a.active").inner_text() == "Export"

    page.click("#new-snapshot")
    row = page.locator("#exports .export-row").first
    row.wait_for()
    assert row.get_attribute("data-status") == "done"
    assert row.locator(".export-rows").inner_text() == "25"
    assert "requested" in page.locator("#exports [role=status]").inner_text()
    export = Export.objects.get(project=project)
    assert row.get_attribute("data-export-id") == str(export.pk) and export.row_count == 25

    href = row.locator("a.export-download").get_attribute("href")
    res = page.request.get(f"{live_server.url}{href}")
    assert res.status == 200
    lines = gzip.decompress(res.body()).decode().splitlines()
    assert len(lines) == 26 and json.loads(lines[-1])["rows"] == 25

    # Keyboard: "n" asks again; nothing changed, so the same export is shown, then a new change makes a new one.
    page.keyboard.press("n")
    page.locator("#exports [role=status]", has_text="Nothing changed").wait_for()
    assert page.locator("#exports .export-row").count() == 1
    ground_truth_set(item=ItemFactory(project=project), label="neg", method="imported")
    page.select_option("#export-format", "csv")
    page.fill("#export-since", page.locator("#exports .export-row code.cursor").first.inner_text())
    page.click("#new-snapshot")
    page.locator("#exports .export-row").nth(1).wait_for()
    newest = page.locator("#exports .export-row").first
    assert newest.locator(".export-rows").inner_text() == "1" and "CSV" in newest.inner_text()
    page.screenshot(path="/tmp/loupe-export.png", full_page=True)


def test_bad_cursor_is_shown_and_annotators_are_refused(page, live_server, eager_tasks):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/export")
    page.fill("#export-since", "not-a-cursor")
    page.click("#new-snapshot")
    assert "not a valid cursor" in page.locator("#exports [role=alert]").inner_text()
    assert not Export.objects.exists()
    page.screenshot(path="/tmp/loupe-export-empty.png", full_page=True)

    annotator = add_member(project, role=Role.ANNOTATOR)
    page.context.clear_cookies()
    login(page, live_server, annotator)
    assert page.goto(f"{live_server.url}/projects/{project.pk}/export").status == 403
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    assert "Export" not in page.locator("#project-tabs").inner_text()
