"""The bug page in a browser at phone width: tags added and removed one at a time with the keyboard
(the other tags stay), closing only through the shared Resolve dialog, failures in pages, a comment
that mentions a member, the occurrences chart with its table."""

import pytest
from django.core import mail

from bugqueue.models import Bug, BugCommentMention
from bugqueue.services.tags import tags_seed
from labeling.models import Role
from tests.browser.conftest import login
from tests.bugqueue.factories import make_bug
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = "/tmp/loupe-bug-page"


@pytest.fixture(autouse=True)
def _tags(transactional_db):
    tags_seed()  # the curated tags come from a data migration, which transactional tests flush


def _no_sideways_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width}px)"


def _chips(page):
    return sorted(page.locator("#tag-chips li.bq-tag-chip").evaluate_all("els => els.map(e => e.dataset.tag)"))


def test_tags_one_at_a_time_keep_the_others(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    bug = make_bug(project, title="Refunds routed to shipping", tags=["label_flip", "data_drift"])
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/bugs/{bug.pk}")
    assert _chips(page) == ["data_drift", "label_flip"]

    select = page.locator("#tag-add-select")
    select.focus()
    select.select_option("schema_change")
    page.keyboard.press("Tab")  # to the Add button
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    page.locator("#tag-chips li[data-tag=schema_change]").wait_for()
    assert _chips(page) == ["data_drift", "label_flip", "schema_change"]
    assert sorted(Bug.objects.get(pk=bug.pk).tags.values_list("slug", flat=True)) == [
        "data_drift",
        "label_flip",
        "schema_change",
    ]
    assert page.locator("#tag-add-select option[value=schema_change]").count() == 0  # already on the bug
    _no_sideways_scroll(page)
    page.screenshot(path=f"{SHOTS}-tags-390.png", full_page=True)

    page.locator("#tag-chips li[data-tag=label_flip] button").focus()
    page.keyboard.press("Enter")
    page.locator("#tag-chips li[data-tag=label_flip]").wait_for(state="detached")
    assert _chips(page) == ["data_drift", "schema_change"]
    history = page.locator("#history").inner_text()
    assert "+schema_change" in history and "-label_flip" in history


def test_closing_goes_through_the_resolve_dialog(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    bug = make_bug(project, title="Refunds routed to shipping")
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/bugs/{bug.pk}")
    options = page.locator("#edit-status option").evaluate_all("els => els.map(e => e.value)")
    assert options == ["new", "triaged", "in_progress"]  # no way to close without a resolution

    page.locator("#bug-edit [data-resolve-open]").click()
    dialog = page.locator("#resolve-dialog")
    dialog.wait_for(state="visible")
    dialog.locator("input[name=resolution][value=wont_fix]").check()
    page.fill("#resolve-note", "Expected behaviour")
    page.keyboard.press("Enter")
    dialog.locator('#flow-text:has-text("Resolved as won\'t fix")').wait_for()
    with page.expect_navigation():
        page.keyboard.press("Enter")  # Close: the page reloads with the new state
    bug.refresh_from_db()
    assert (bug.status, bug.resolution, bug.resolution_note) == ("wont_fix", "wont_fix", "Expected behaviour")
    assert page.locator("#edit-status option").evaluate_all("els => els.map(e => e.value)") == ["wont_fix", "new"]
    assert "Won't fix" in page.locator("#bug-badges").inner_text()
    _no_sideways_scroll(page)


def test_failures_pages_and_a_comment_with_a_mention(page, live_server, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    add_member(project, UserFactory(username="maya", email="maya@example.com"), Role.REVIEWER)
    failures = [
        {"payload": {"text": f"input {i}"}, "predicted_label": "pos", "expected_label": "neg", "model_version": "v1"}
        for i in range(60)
    ]
    bug = make_bug(project, title="Refunds routed to shipping", failures=failures)
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/bugs/{bug.pk}")
    assert page.locator("tr.failure-row").count() == 50
    assert page.locator("#failures-range").inner_text() == "1–50 of 60, newest first"
    page.locator("canvas#occurrences-chart").wait_for()
    assert page.locator("#occurrences-chart-table").count() == 1  # the chart's numbers as a table
    _no_sideways_scroll(page)
    page.screenshot(path=f"{SHOTS}-390.png")
    page.locator("#failures-pager").scroll_into_view_if_needed()
    page.screenshot(path=f"{SHOTS}-pager-390.png")

    page.locator("#failures-older").click()
    page.wait_for_url("**/bugs/*?page=2#failures")
    assert page.locator("tr.failure-row").count() == 10
    assert page.locator("#failures-range").inner_text() == "51–60 of 60, newest first"
    assert "input 0" in page.locator("#failures").inner_text()
    page.locator("#failures-newer").click()
    page.wait_for_url("**/bugs/*?page=1#failures")
    assert page.locator("tr.failure-row").count() == 50

    page.fill("#comment-body", "Same as last week, @maya?")
    page.locator("#comments button.primary").click()
    page.locator("#comments .bq-mention").wait_for()
    assert page.locator("#comments .bq-mention").inner_text() == "@maya"
    assert list(BugCommentMention.objects.values_list("user__username", flat=True)) == ["maya"]
    assert [m.to for m in mail.outbox] == [["maya@example.com"]]
    _no_sideways_scroll(page)
