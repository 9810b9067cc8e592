"""Importing items from a CSV in the browser: upload, map, preview, start, progress to 100%, summary,
rejected rows downloaded; readable at 390 px."""

import csv
import io

import pytest

from labeling.models import ImportJob, Item, Role
from labeling.services import file_import
from labeling.services.file_import import import_run
from tests.browser.conftest import login
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def items_csv(rows=30):
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "body", "channel", "rank", "prediction", "model", "prob_pos", "prob_neg", "prob_neu"])
    for n in range(rows):
        label, probs = ("pos", (0.7, 0.2, 0.1)) if n % 2 else ("neg", (0.1, 0.8, 0.1))
        ext = f"t{n}"
        if n == 4:
            label = "maybe"  # not a label of the project
        if n == 9:
            probs = (0.7, 0.7, 0.1)  # does not sum to 1
        if n == 17:
            ext = ""  # no id
        w.writerow([ext, f"ticket {n} text", "web" if n % 3 else "app", "x" if n == 21 else n % 5, label, "v7", *probs])
    return out.getvalue().encode()


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def queued(monkeypatch):
    """Started imports wait here instead of a broker: the test runs them while the page polls."""
    sent = []
    monkeypatch.setattr(file_import, "enqueue_on_commit", lambda task, job_id: sent.append(job_id))
    return sent


def test_upload_map_preview_start_progress_summary_download(page, live_server, media, queued):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.click("#project-tabs >> text=Import")
    assert page.locator("#project-tabs a.active").inner_text() == "Import"
    assert "No imports yet" in page.locator("#import-jobs").inner_text()

    # A bad file first: a clear message, nothing stored.
    page.set_input_files("#import-file", files=[{"name": "empty.csv", "mimeType": "text/csv", "buffer": b""}])
    page.click("#import-upload-btn")
    assert "The file is empty" in page.locator("#import-error").inner_text()

    page.set_input_files("#import-file", files=[{"name": "tickets.csv", "mimeType": "text/csv", "buffer": items_csv()}])
    page.keyboard.press("u")  # a file is chosen: "u" uploads it
    page.locator("#import-mapping").wait_for()
    # Defaults by column name, and a 10-row preview.
    assert page.input_value("#map-external_id") == "id"
    assert page.input_value("#map-text") == "body"
    assert page.input_value("#map-label") == "prediction"
    assert page.input_value("#map-model_version") == "model"
    assert page.input_value("#map-prob-pos") == "prob_pos"
    assert page.is_checked("input[name=prob_mode][value=columns]")
    assert page.locator("#import-preview tbody tr").count() == 10
    assert "ticket 0 text" in page.locator("#import-preview").inner_text()
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path="/tmp/loupe-import-mapping-390.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Map rank to priority, drop it from the payload, start with the keyboard.
    page.select_option("#map-priority", "rank")
    page.uncheck("input[name=payload][value=rank]")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("s")
    page.locator("#import-progress").wait_for()
    assert page.locator("#import-percent").inner_text() == "0%"
    assert len(queued) == 1
    job = ImportJob.objects.get(pk=queued[0])
    assert job.mapping["priority"] == "rank" and "rank" not in job.mapping["payload"]

    import_run(job_id=job.pk, batch_rows=8)
    page.locator("#import-summary").wait_for()
    assert page.locator("#import-percent").inner_text() == "100%"
    assert page.locator("#import-progress").get_attribute("data-status") == "done"
    counts = {k: page.locator(f"#n-{k}").inner_text() for k in ("rows_read", "created", "unchanged", "rejected")}
    assert counts == {"rows_read": "30", "created": "26", "unchanged": "0", "rejected": "4"}
    table = page.locator("#import-rejections").inner_text()
    assert "'maybe' is not a label" in table and "must sum to 1" in table and "priority must be" in table
    assert Item.objects.filter(project=project).count() == 26
    assert Item.objects.get(project=project, external_id="t3").payload == {"channel": "app", "text": "ticket 3 text"}
    assert Item.objects.get(project=project, external_id="t3").priority == 3

    with page.expect_download() as dl:
        page.keyboard.press("d")
    with open(dl.value.path()) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["row", "external_id", "reason"]
    assert [r[0] for r in rows[1:]] == ["5", "10", "18", "22"]
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path="/tmp/loupe-import-390.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways at 390 px ({width} px)"


def test_reviewers_get_no_import_tab_or_page(page, live_server, media):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    reviewer = add_member(project, role=Role.REVIEWER)
    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    assert page.locator("#project-tabs >> text=Import").count() == 0
    res = page.goto(f"{live_server.url}/projects/{project.pk}/import")
    assert res.status == 403
