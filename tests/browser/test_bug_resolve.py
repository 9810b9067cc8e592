"""The Resolve dialog: from the bug page (a dataset, look-alikes to mine, the hand-off's progress
while it runs, the versions it produced, conflicts waiting for a reviewer) and from the triage
page's `r`."""

import pytest

from bugqueue.models import Bug, BugDatasetFlow, Dataset, DatasetMember, DatasetPending, Tag
from bugqueue.services.datasets import bug_datasets_flow_run, bug_datasets_flow_start
from bugqueue.services.tags import tags_seed
from tests.browser.conftest import login
from tests.bugqueue.factories import failing_bug, label, make_bug, make_items
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _similarity_index(project, settings, tmp_path):
    """Refund tickets (the bug's kind) and parcel tickets, indexed for mining look-alikes."""
    from labeling.services import similarity

    settings.MEDIA_ROOT = tmp_path
    similarity._load_segment.cache_clear()
    refunds = make_items(project, 12, prefix="r", text="refund my double charge invoice")
    make_items(project, 12, prefix="s", text="parcel lost tracking courier")
    label(refunds[6:9], "billing")
    similarity.similarity_index_update(project_id=project.id)
    return refunds


def test_resolve_from_the_bug_page_into_a_dataset_with_lookalikes_and_follow_its_progress(
    page, live_server, settings, tmp_path, monkeypatch
):
    from bugqueue import tasks

    tags_seed()
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    refunds = _similarity_index(project, settings, tmp_path)
    core = Dataset.objects.create(project=project, name="core regressions", gate=True)
    flips = Dataset.objects.create(project=project, name="label flips")
    flips.tags.set(Tag.objects.filter(slug="label_flip"))
    Dataset.objects.create(project=project, name="unrelated")
    bug = failing_bug(
        project,
        title="Refunds routed to shipping",
        tags=["label_flip"],
        failures=[(refunds[0], "billing"), (refunds[1], None)],
    )
    sent = []  # the flow's task, as the broker would get it: run below while the dialog watches
    monkeypatch.setattr(tasks.bug_datasets_flow_task, "delay", lambda flow_id: sent.append(flow_id))

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/bugs/{bug.pk}")
    dialog = page.locator("#resolve-dialog")
    page.keyboard.press("r")
    dialog.wait_for(state="visible")
    core_box = dialog.locator(f"input[name=datasets][value='{core.pk}']")
    flips_box = dialog.locator(f"input[name=datasets][value='{flips.pk}']")
    assert not core_box.is_checked() and not core_box.is_disabled()
    assert flips_box.is_checked() and flips_box.is_disabled()  # follows the bug's tag: always included
    assert "follows label_flip" in dialog.locator(f".bq-ds[data-dataset='{flips.pk}']").inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    page.keyboard.press("r")
    dialog.wait_for(state="visible")
    # A bad answer is shown in the dialog and changes nothing.
    dialog.locator("input[name=resolution][value=duplicate]").check()
    page.fill("#resolve-duplicate", "999999")
    page.keyboard.press("Enter")
    dialog.locator("#resolve-error").wait_for(state="visible")
    assert dialog.locator("#resolve-error").inner_text().strip()
    assert Bug.objects.get(pk=bug.pk).status == "new" and not BugDatasetFlow.objects.exists()

    dialog.locator("input[name=resolution][value=fixed]").check()
    assert dialog.locator("#resolve-datasets").is_visible() and not dialog.locator("#resolve-dup").is_visible()
    core_box.check()
    page.fill("#resolve-note", "Routing rule fixed")
    page.fill("#resolve-mine", "5")
    page.keyboard.press("Enter")
    dialog.locator("#resolve-progress").wait_for(state="visible")
    assert dialog.locator("#flow-status").inner_text() == "queued"
    assert not dialog.locator("#resolve-error").is_visible()

    (flow_id,) = sent
    flow = BugDatasetFlow.objects.get(pk=flow_id)
    assert (flow.datasets, flow.mine_similar) == ([core.pk], 5)
    bug.refresh_from_db()
    assert (bug.status, bug.resolution, bug.resolution_note) == ("resolved", "fixed", "Routing rule fixed")
    flow = bug_datasets_flow_run(flow_id=flow_id)  # what the worker does; the dialog polls for it
    assert flow.status == "done" and flow.mined == 5 and flow.added >= 2 and flow.pending >= 1

    dialog.locator("#flow-status", has_text="done").wait_for()
    for key in ("added", "pending", "conflicts", "mined"):
        assert dialog.locator(f"#flow-{key}").inner_text() == str(getattr(flow, key)), key
    links = dialog.locator("#flow-versions a")
    assert sorted(links.all_inner_texts()) == ["core regressions v1", "label flips v1"]
    assert dialog.locator("#flow-versions a", has_text="core regressions").get_attribute("href") == (
        f"/projects/{project.pk}/datasets#dataset-{core.pk}"
    )
    page.screenshot(path="/tmp/loupe-resolve-dialog.png")

    page.keyboard.press("Enter")  # Close: the page reloads with the bug resolved and its progress
    page.locator("#bug-badges .st-resolved").wait_for()
    assert page.locator("#total-added").inner_text() == str(DatasetMember.objects.filter(bug=bug).count())
    waiting = DatasetPending.objects.filter(bug=bug, added_in__isnull=True).values("item_id").distinct().count()
    assert page.locator("#total-waiting").inner_text() == str(waiting) and waiting >= 1
    assert page.locator("#total-mined").inner_text() == "5"
    assert f"{waiting} items wait for labels" in page.locator("#progress-waiting").inner_text()
    assert sorted(page.locator("#progress-versions a").all_inner_texts()) == ["core regressions v1", "label flips v1"]
    assert page.locator("#progress-conflicts").count() == 0

    # A failure whose expected label disagrees with the item's ground truth waits for a reviewer.
    (odd,) = make_items(project, 1, prefix="x", text="refund twice")
    DatasetPending.objects.create(dataset=core, item=odd, bug=bug, reason="conflict", expected_label="billing")
    page.reload()
    assert page.locator("#total-conflicts").inner_text() == "1"
    assert "1 item waits for a reviewer's decision" in page.locator("#progress-conflicts").inner_text()
    page.screenshot(path="/tmp/loupe-bug-progress.png", full_page=True)

    # A hand-off still queued when the page loads is followed, and the section redrawn when it ends.
    again = bug_datasets_flow_start(bug=bug, actor=manager, dataset_ids=[core.pk])
    page.reload()
    page.locator(f"#flows tr.flow[data-flow='{again.pk}'][data-status='queued']").wait_for()
    bug_datasets_flow_run(flow_id=again.pk)
    page.locator(f"#flows tr.flow[data-flow='{again.pk}'][data-status='done']").wait_for()
    assert page.locator("#total-conflicts").inner_text() == "1"

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("() => document.getElementById('dataset-flows').scrollWidth") <= 390
    page.screenshot(path="/tmp/loupe-bug-page-phone.png", full_page=True)
    page.keyboard.press("r")
    dialog.wait_for(state="visible")
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.screenshot(path="/tmp/loupe-resolve-dialog-phone.png")


def test_triage_r_opens_the_resolve_dialog_and_the_row_updates(page, live_server, eager_celery):
    tags_seed()
    lead = UserFactory()
    project = ProjectFactory(creator=lead, name="Tickets")
    items = make_items(project, 2, prefix="t")
    core = Dataset.objects.create(project=project, name="core")
    first = make_bug(project, lead, title="Accents dropped before tokenization")
    bug = failing_bug(project, title="Refunds routed to shipping", failures=[(items[0], "billing")])

    login(page, live_server, lead)
    page.goto(f"{live_server.url}/triage?project={project.pk}")
    row = page.locator(f"tr.bug-row[data-bug-id='{bug.pk}']")
    row.locator(".cell-priority").click()  # select it
    page.keyboard.press("r")
    dialog = page.locator("#resolve-dialog")
    dialog.wait_for(state="visible")
    assert dialog.locator("#resolve-title").inner_text() == f"Resolve #{bug.pk}"
    assert "Refunds routed to shipping" in dialog.locator("#resolve-bug-title").inner_text()
    page.keyboard.press("j")  # typed into the note: the table's keys wait while the dialog is open
    assert page.locator("tr.bug-row.selected").get_attribute("data-bug-id") == str(bug.pk)
    page.fill("#resolve-note", "Rule fixed")
    dialog.locator(f"input[name=datasets][value='{core.pk}']").check()
    page.keyboard.press("Enter")
    dialog.locator("#flow-status", has_text="done").wait_for()
    assert dialog.locator("#flow-added").inner_text() == "1"
    assert dialog.locator("#flow-versions a").inner_text() == "core v1"
    row.locator(".cell-status", has_text="Resolved").wait_for()  # the row updates under the dialog
    page.screenshot(path="/tmp/loupe-triage-resolve.png")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.url.endswith(f"/triage?project={project.pk}")  # no reload

    bug.refresh_from_db()
    assert (bug.status, bug.resolution_note) == ("resolved", "Rule fixed")
    assert list(DatasetMember.objects.filter(dataset=core).values_list("item_id", "label")) == [
        (items[0].pk, "billing")
    ]
    assert BugDatasetFlow.objects.get(bug=bug).datasets == [core.pk]
    first.refresh_from_db()
    assert first.status == "new"

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.locator(f"tr.bug-row[data-bug-id='{first.pk}'] .cell-priority").click()
    page.keyboard.press("r")
    dialog.wait_for(state="visible")
    page.screenshot(path="/tmp/loupe-triage-resolve-phone.png")
