"""The item explorer in a browser: search with / and highlight, filter, move with j/k and open with
Enter, a manager's bulk action, and the pages at 390 px."""

import pytest

from labeling.models import Item, Role
from labeling.services.ingestion import items_ingest
from tests.browser.conftest import login
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXTS = [
    "The refund for my cracked screen never arrived",
    "Courier left the parcel in the rain, box soaked",
    "Charged twice for one subscription, please refund one",
    "Great app, the new dark mode is lovely",
    "Password reset email takes an hour to come",
]


def _world():
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Support tickets")
    annotator = add_member(project, role=Role.ANNOTATOR)
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": f"ticket-{i:03d}",
                "payload": {"text": t, "channel": "email" if i % 2 else "chat"},
                "prediction": {
                    "model_version": "v3",
                    "label": "neg" if "refund" in t else "pos",
                    "probabilities": {"pos": 0.1, "neg": 0.85, "neu": 0.05},
                },
            }
            for i, t in enumerate(TEXTS)
        ],
    )
    return project, manager, annotator


def test_search_filter_open_and_bulk(page, live_server):
    project, manager, _ = _world()
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.click("#project-tabs >> text=Items")
    page.wait_for_selector("#ix-table")
    assert page.locator("tr.ix-row").count() == 5

    page.wait_for_load_state("load")  # the page's script binds the keys once it has run
    page.keyboard.press("/")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'ix-q'")
    page.keyboard.type("refund")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=refund**")
    assert page.locator("tr.ix-row").count() == 2
    assert page.locator("tr.ix-row mark").first.inner_text().lower() == "refund"

    page.click("summary:has-text('Filters')")
    page.select_option("select[name=predicted]", "neg")
    page.fill("input[name=confidence_min]", "0.8")
    page.click("text=Apply filters")
    page.wait_for_url("**predicted=neg**")
    assert page.locator("tr.ix-row").count() == 2

    page.screenshot(path="/tmp/loupe-items-desktop.png", full_page=True)
    page.click("th >> text=Confidence")
    page.wait_for_url("**ordering=-confidence**")

    # keyboard: j moves down, k up, Enter opens the selected row
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    first = page.locator("tr.ix-row").nth(0)
    assert "selected" in (first.get_attribute("class") or "")
    ext = first.locator(".ix-ext a").inner_text()
    page.keyboard.press("Enter")
    page.wait_for_selector("#it-title")
    assert page.inner_text("#it-title") == ext
    assert "refund" in page.inner_text("#it-payload")
    assert "v3" in page.inner_text("#it-predictions")
    assert page.locator("#item-comments").count() == 1
    page.keyboard.press("Escape")
    page.wait_for_url("**q=refund**")

    # bulk: select both rows and set their priority
    page.check("#ix-all")
    assert page.is_visible("#ix-bulk") and page.inner_text("#ix-selected") == "2"
    page.fill("#ix-priority", "42")
    page.click("#ix-bulk button[data-action=set_priority]")
    page.wait_for_selector("text=2 changed")
    page.wait_for_load_state("load")
    assert set(Item.objects.filter(priority=42).values_list("external_id", flat=True)) == {"ticket-000", "ticket-002"}


def test_phone_width(page, live_server):
    project, manager, annotator = _world()
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/items?q=refund")
    page.wait_for_selector("#ix-table")
    assert page.locator("#ix-bulk").count() == 0  # annotators get no bulk actions
    assert "hidden" in page.inner_text("tr.ix-row >> nth=0")  # blind: the prediction is not shown
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    page.screenshot(path="/tmp/loupe-items-390.png", full_page=True)
    page.click("tr.ix-row >> nth=0 >> .ix-ext a")
    page.wait_for_selector("#it-title")
    assert page.locator("#it-blind").count() == 1
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    page.screenshot(path="/tmp/loupe-item-390.png", full_page=True)


def test_add_selected_and_all_matching_items_to_a_dataset(page, live_server):
    """A manager adds ticked rows to a new dataset (an item without ground truth is refused, then
    left out on request), then every item matching the filter (more than a page) to the same one;
    each time a new version holds the items with their ground truth, shown on the datasets page."""
    from bugqueue.models import Dataset, DatasetMember
    from labeling.services.ground_truth import ground_truth_set

    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Support tickets")
    items_ingest(
        project=project,
        rows=[{"external_id": f"ticket-{i:03d}", "payload": {"text": f"refund request {i}"}} for i in range(55)]
        + [{"external_id": "other", "payload": {"text": "dark mode please"}}],
    )
    for item in Item.objects.filter(project=project).exclude(external_id="ticket-001"):
        ground_truth_set(item=item, label="neg" if item.pk % 2 else "pos", method="imported")

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/items?q=refund")
    page.wait_for_selector("#ix-table")
    page.wait_for_load_state("load")
    assert page.locator("tr.ix-row").count() == 50
    page.check("input.ix-pick[data-external='ticket-000']")
    page.check("input.ix-pick[data-external='ticket-001']")
    assert page.is_hidden("#ix-match-all")  # only once the whole page is ticked
    page.click("#ix-ds-open")
    page.wait_for_selector("#ix-ds-dialog[open]")
    assert page.inner_text("#ix-ds-scope") == "2 selected item(s)."
    page.wait_for_selector("#ix-ds-choice option[value=new]", state="attached")
    assert page.input_value("#ix-ds-choice") == "new"  # no dataset yet: create one
    page.fill("#ix-ds-name", "Refund regressions")
    page.click("#ix-ds-add")
    page.wait_for_selector("#ix-ds-error:has-text('without ground truth')")
    assert "ticket-001" in page.inner_text("#ix-ds-error")
    dataset = Dataset.objects.get(project=project, name="Refund regressions")
    assert dataset.latest_version == 0  # refused: nothing written
    page.click("#ix-ds-skip")
    page.wait_for_selector("#ix-ds-done")
    assert "Refund regressions v1" in page.inner_text("#ix-ds-done")
    assert "ticket-001" in page.inner_text("#ix-ds-result")  # said to be left out
    labels = dict(Item.objects.filter(project=project).values_list("pk", "ground_truth__label"))
    v1 = list(
        DatasetMember.objects.filter(dataset=dataset, added_in=1).values_list("item__external_id", "item_id", "label")
    )
    assert [(e, lab) for e, _, lab in v1] == [("ticket-000", labels[v1[0][1]])]
    page.click("#ix-ds-close")

    # Every item matching the filter: more than this page.
    page.check("#ix-all")
    page.click("#ix-match-all")
    assert page.inner_text("#ix-selected") == "All matching"
    page.click("#ix-ds-open")
    page.wait_for_selector(f"#ix-ds-choice option[value='{dataset.pk}']", state="attached")
    assert page.input_value("#ix-ds-choice") == str(dataset.pk)
    assert "Every item matching the filter" in page.inner_text("#ix-ds-scope")
    page.click("#ix-ds-add")
    page.wait_for_selector("#ix-ds-skip:visible")
    page.click("#ix-ds-skip")
    page.wait_for_selector("#ix-ds-done")
    assert "Refund regressions v2" in page.inner_text("#ix-ds-done")
    page.screenshot(path="/tmp/loupe-items-add-to-dataset.png", full_page=True)
    v2 = dict(DatasetMember.objects.filter(dataset=dataset, added_in=2).values_list("item_id", "label"))
    assert len(v2) == 53 and all(labels[pk] == label for pk, label in v2.items())
    assert not DatasetMember.objects.filter(dataset=dataset, item__external_id__in=["other", "ticket-001"]).exists()

    page.click("#ix-ds-link")
    page.wait_for_url(f"**/projects/{project.pk}/datasets#dataset-{dataset.pk}")
    page.wait_for_selector(f"#dataset-{dataset.pk} tr.version[data-number='2']")
    assert "Added from the item explorer" in page.inner_text(f"#dataset-{dataset.pk}")
