import pytest

from bugqueue.models import Dataset, DatasetMember
from bugqueue.services.datasets import Addition, dataset_version_create
from bugqueue.services.evaluations import evaluation_run, predictions_parse
from bugqueue.services.tags import tags_seed
from labeling.models import Role
from tests.browser.conftest import login
from tests.bugqueue.factories import failing_bug, label, make_items
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def live_items(ds):
    return set(
        DatasetMember.objects.filter(dataset=ds, removed_in__isnull=True).values_list("item__external_id", flat=True)
    )


def test_create_edit_curate_and_download_a_dataset(page, live_server):
    tags_seed()  # transactional tests flush the data migration's tags
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    agree, expected_only, conflict = make_items(project, 3, prefix="fail-")
    label([agree], "pos")
    label([conflict], "neg")
    bug = failing_bug(
        project, title="billing to account", failures=[(agree, "pos"), (expected_only, "pos"), (conflict, "pos")]
    )
    refunds = make_items(project, 4, prefix="refund-", text="Refund my order")
    label(refunds[:3], "neu")
    make_items(project, 2, prefix="login-", text="Cannot log in")

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/datasets")
    assert "No validation datasets yet" in page.locator("#datasets-empty").inner_text()
    assert page.locator("#models-link").get_attribute("href") == f"/projects/{project.pk}/models"

    # create, with the keyboard
    page.keyboard.press("n")
    dialog = page.locator("#dataset-dialog")
    assert dialog.is_visible()
    page.fill("#ds-name", "resolved bugs")
    page.fill("#ds-description", "Failures of resolved bugs")
    page.check("#ds-gate")
    page.fill("#ds-min-accuracy", "85")
    page.check("#dataset-form input[name=tags][value=label_flip]")
    page.click("#dataset-save")
    card = page.locator("section.dataset").first
    card.locator(".gate-badge").wait_for()
    ds = Dataset.objects.get(project=project)
    assert (ds.name, ds.gate, ds.min_accuracy) == ("resolved bugs", True, 0.85)
    assert list(ds.tags.values_list("slug", flat=True)) == ["label_flip"]
    assert "minimum accuracy 85.0%" in card.inner_text() and "label_flip" in card.inner_text()
    assert "No version yet" in card.inner_text()

    # a name clash is shown next to the form, which stays open
    page.keyboard.press("n")
    page.fill("#ds-name", "resolved bugs")
    page.click("#dataset-save")
    page.locator("#dataset-error").wait_for()
    assert "already has a dataset named" in page.locator("#dataset-error").inner_text()
    assert dialog.is_visible()
    page.screenshot(path="/tmp/loupe-datasets-create-error.png")
    page.click("#dataset-dialog .ds-cancel")
    assert Dataset.objects.filter(project=project).count() == 1

    # edit
    card.locator(".ds-edit").click()
    assert page.input_value("#ds-name") == "resolved bugs" and page.input_value("#ds-min-accuracy") == "85"
    page.fill("#ds-name", "billing flips")
    page.uncheck("#ds-gate")
    page.fill("#ds-min-accuracy", "90")
    page.click("#dataset-save")
    page.wait_for_function("document.querySelector('section.dataset h2').textContent.includes('billing flips')")
    assert page.locator(".gate-badge").count() == 0
    ds.refresh_from_db()
    assert (ds.name, ds.gate, ds.min_accuracy) == ("billing flips", False, 0.9)

    # add by a bug: the conflicting failure is refused and listed, then the others are added
    page.locator("section.dataset .ds-items").click()
    page.fill("#bug-id", str(bug.pk))
    page.click("#bug-add")
    page.locator("#items-error").wait_for()
    error = page.locator("#items-error").inner_text()
    assert "disagrees with the ground truth" in error and "fail-2: expected pos, ground truth neg" in error
    assert ds.versions.count() == 0
    page.click("#skip-refused")
    page.locator("#items-done").wait_for()
    assert "v1: +2" in page.locator("#items-done").inner_text()
    assert live_items(ds) == {"fail-0", "fail-1"}

    # add by a search (all matches with ground truth: the unlabeled one is refused, then skipped)
    page.fill("#search-q", "refund")
    page.click("#search-go")
    page.locator("#search-results tbody tr").nth(3).wait_for()
    assert page.locator("#search-results tbody tr").count() == 4
    page.click("#search-add-all")
    page.locator("#skip-refused").wait_for()
    assert "refund-3" in page.locator("#items-error").inner_text()
    page.click("#skip-refused")
    page.wait_for_function("document.querySelector('#items-done').textContent.startsWith('v2')")
    assert live_items(ds) == {"fail-0", "fail-1", "refund-0", "refund-1", "refund-2"}
    page.locator("#search-results .badge.ok").nth(2).wait_for()  # the results now say "in dataset"

    # remove one item picked from the search results
    page.locator("#search-results tr[data-external-id='refund-1'] input").check()
    page.click("#search-remove")
    page.wait_for_function("document.querySelector('#items-done').textContent.startsWith('v3')")
    assert "refund-1" not in live_items(ds)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path="/tmp/loupe-datasets-dialog.png", full_page=True)
    page.keyboard.press("Escape")
    assert not page.locator("#items-dialog").is_visible()

    # the versions list shows the three versions, newest first, with the bug link and deltas
    rows = page.locator("section.dataset tr.version")
    assert rows.count() == 3
    assert [rows.nth(i).get_attribute("data-number") for i in range(3)] == ["3", "2", "1"]
    assert rows.nth(2).locator(f"a[href='/bugs/{bug.pk}']").count() == 1
    assert "+0 −1" in rows.nth(0).inner_text()
    rows.nth(0).locator(".delta-toggle").click()
    detail = page.locator("tr.delta-detail")
    detail.locator("h4.delta-rm").wait_for()
    assert "Removed (1)" in detail.inner_text() and "refund-1" in detail.inner_text()

    # downloads
    csv_href = rows.nth(0).locator("a.dl-csv").get_attribute("href")
    jsonl_href = rows.nth(0).locator("a.dl-jsonl").get_attribute("href")
    assert jsonl_href == f"/api/datasets/{ds.pk}/versions/3/items?format=jsonl"
    body = page.request.get(f"{live_server.url}{csv_href}").text()
    lines = body.strip().splitlines()
    assert lines[0] == "external_id,label,bug,added_in,text" and len(lines) == 5
    assert f"fail-0,pos,{bug.pk},1,sample 0" in lines
    jsonl = page.request.get(f"{live_server.url}{jsonl_href}").text().strip().splitlines()
    assert len(jsonl) == 4
    page.screenshot(path="/tmp/loupe-datasets.png", full_page=True)

    # a phone
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.locator("section.dataset").first.wait_for()
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 391)"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide[:15]
    page.screenshot(path="/tmp/loupe-datasets-phone.png", full_page=True)
    page.keyboard.press("a")
    assert page.locator("#items-dialog").is_visible()
    page.screenshot(path="/tmp/loupe-datasets-phone-dialog.png")


def test_read_only_for_an_annotator_and_empty_state(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    annotator = add_member(project, role=Role.ANNOTATOR)
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/datasets")
    assert "No validation datasets yet" in page.locator(".empty").inner_text()
    assert page.locator("#new-dataset").count() == 0
    Dataset.objects.create(project=project, name="core", gate=True)
    page.reload()
    assert page.locator("section.dataset .gate-badge").count() == 1
    assert page.locator(".ds-edit").count() == 0 and page.locator("#dataset-dialog").count() == 0
    page.keyboard.press("n")
    assert page.locator("dialog[open]").count() == 0


def test_evaluation_failures_page_lists_the_wrong_items(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    items = make_items(project, 6, prefix="d")
    label(items, "pos")
    ds = Dataset.objects.create(project=project, name="regressions", min_accuracy=0.8)
    dataset_version_create(dataset_id=ds.pk, add=[Addition(i.pk, "pos") for i in items])
    bad = [{"external_id": i.external_id, "label": "neg" if k < 3 else "pos"} for k, i in enumerate(items)]
    evaluation = evaluation_run(
        project=project, actor=manager, model_version="m-bad", batch=predictions_parse(project=project, rows=bad)
    )
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/evaluations/{evaluation.pk}/datasets/{ds.pk}/failures")
    page.wait_for_selector("#failures")
    assert page.locator("#failures tbody tr").count() == 3
    assert "m-bad" in page.locator("h1").inner_text()
