"""The bug stream in chromium as a manager: search, select three bugs with x, bulk-assign them,
snooze one and see it leave the default (unresolved) view; the page at 390 px."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bugqueue.models import Bug, BugEvent, BugOccurrence
from bugqueue.services.tags import tags_seed
from labeling.models import Role
from tests.browser.conftest import login
from tests.bugqueue.factories import make_bug, spelled
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def row(page, bug):
    return page.locator(f"tr.bug-row[data-bug-id='{bug.pk}']")


def _world(n_extra=25):
    tags_seed()  # transactional tests flush the data migration's tags
    lead = UserFactory(username="lead")
    project = ProjectFactory(creator=lead, name="Tickets")
    rita = add_member(project, UserFactory(username="rita"), role=Role.REVIEWER)
    refunds = [
        make_bug(
            project,
            lead,
            title=f"Refunds routed to shipping ({n})",
            kind="failed_prediction",
            tags=["label_flip"],
        )
        for n in ("email", "chat", "phone")
    ]
    others = [
        make_bug(project, lead, title=f"Tokenizer drops accents {spelled(i)}", model_version="v3")
        for i in range(n_extra)
    ]
    now = timezone.now()
    BugOccurrence.objects.bulk_create(
        [BugOccurrence(bug=refunds[0], count=(d % 4) + 1, seen_at=now - timedelta(days=d)) for d in range(14)]
    )
    return lead, rita, project, refunds, others


def test_search_select_bulk_assign_and_snooze(page, live_server):
    lead, rita, project, refunds, others = _world()
    login(page, live_server, lead)
    page.goto(f"{live_server.url}/bugs?project={project.pk}")
    assert page.locator("#q").input_value() == "is:unresolved"
    assert page.locator("tr.bug-row").count() == 28
    # 28 compact rows fit in about a screen or two
    assert page.locator("#bug-table").bounding_box()["height"] < 1800
    assert row(page, refunds[0]).locator("svg.spark polyline").get_attribute("points").count(",") == 14
    page.screenshot(path="/tmp/loupe-stream.png", full_page=True)

    # search with the keyboard: / focuses the box
    page.keyboard.press("/")
    page.keyboard.type('is:unresolved tag:label_flip "refunds"')
    page.keyboard.press("Enter")
    page.wait_for_url("**q=is%3Aunresolved+tag%3Alabel_flip**")
    assert page.locator("tr.bug-row").count() == 3

    # select the three with j/k and x, then assign them to rita
    for _ in range(3):
        page.keyboard.press("x")
        page.keyboard.press("j")
    page.locator("#bulk-count", has_text="3 selected").wait_for()
    page.keyboard.press("a")
    page.keyboard.type("rita")
    page.keyboard.press("Enter")
    page.locator("#toast", has_text="3 bugs assigned to rita").wait_for()
    for b in refunds:
        row(page, b).locator(".who", has_text="rita").wait_for()
        b.refresh_from_db()
        assert b.assignee == rita
    assert BugEvent.objects.filter(bug__in=refunds, field="assignee", to_value="rita", actor=lead).count() == 3

    # snooze the first one until 10 more events: it leaves the default view
    page.locator("#q").fill("is:unresolved")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    row(page, refunds[0]).locator("td.seen").click()
    page.keyboard.press("x")
    page.select_option("#bulk-snooze", "occurrences:10")
    page.locator("form[data-action=snooze] button", has_text="Snooze").first.click()
    page.locator("#toast", has_text="1 bug snoozed").wait_for()
    assert row(page, refunds[0]).count() == 0
    assert row(page, refunds[1]).count() == 1
    snoozed = Bug.objects.get(pk=refunds[0].pk)
    assert snoozed.snoozed and snoozed.snooze_until_occurrences == snoozed.occurrences + 10

    # the Snoozed view shows it
    page.click("#saved-views a[data-view=snoozed]")
    row(page, refunds[0]).wait_for()
    assert page.locator("tr.bug-row").count() == 1

    # a bad search is answered in words, not with a list
    page.goto(f"{live_server.url}/bugs?project={project.pk}&q=color:red")
    assert "Unknown search key 'color'" in page.locator("#search-error").inner_text()
    assert page.locator("tr.bug-row").count() == 0


def test_stream_at_390px_and_the_help(browser, live_server):
    lead, rita, project, refunds, others = _world(n_extra=5)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        login(page, live_server, lead)
        page.goto(f"{live_server.url}/bugs?project={project.pk}")
        wide = page.evaluate(
            "Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 391)"
            ".map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 12)"
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
        assert page.locator("tr.bug-row").count() == 8
        page.keyboard.press("?")
        page.locator("#stream-help", has_text="select the bug").wait_for()
        page.screenshot(path="/tmp/loupe-stream-390.png", full_page=True)
        page.keyboard.press("Escape")
        assert page.locator("#stream-help").is_hidden()
        first = page.locator("tr.bug-row").first.get_attribute("data-bug-id")
        page.keyboard.press("Enter")  # opens the bug under the cursor
        page.wait_for_url(f"**/bugs/{first}")
    finally:
        context.close()
