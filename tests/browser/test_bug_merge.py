"""Merging from the bug page: a manager merges a bug into another with "Merge into #…", the merged
bug's page says where it went and offers Unmerge, which puts everything back."""

import pytest

from bugqueue.models import Bug, BugMerge, FailureExample
from bugqueue.services.tags import tags_seed
from tests.browser.conftest import login
from tests.bugqueue.factories import failing_bug, make_bug, make_items
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_merge_into_another_bug_then_unmerge(page, live_server):
    tags_seed()
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    items = make_items(project, 3, prefix="m")
    target = failing_bug(project, title="Refunds routed to shipping", failures=[(items[0], "billing")])
    source = failing_bug(
        project,
        title="Refund tickets land in shipping",
        tags=["label_flip"],
        failures=[(items[1], "billing"), (items[2], None)],
    )
    closed = make_bug(project, manager, title="Closed one")
    Bug.objects.filter(pk=closed.pk).update(status="wont_fix")

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/bugs/{source.pk}")
    card = page.locator("#merge-card")
    # A refused merge (into a closed bug) says why and changes nothing.
    page.fill("#merge-into", str(closed.pk))
    page.keyboard.press("Enter")
    card.locator("#merge-error", has_text="reopen it").wait_for()
    assert not BugMerge.objects.exists()

    page.fill("#merge-into", f"#{target.pk}")
    page.click("#merge-submit")
    card.locator("#merged-into").wait_for()
    assert f"#{target.pk}" in card.locator("#merged-into").inner_text()
    assert "2 failures" in card.locator("#merged-into").inner_text()
    page.locator("#bug-badges .st-duplicate").wait_for()
    page.screenshot(path="/tmp/loupe-bug-merged.png", full_page=True)
    assert FailureExample.objects.filter(bug=target).count() == 3
    source.refresh_from_db()
    assert (source.status, source.duplicate_of_id) == ("duplicate", target.pk)

    page.goto(f"{live_server.url}/bugs/{target.pk}")
    page.locator("#history", has_text=f"Merged #{source.pk} into this bug").wait_for()
    page.goto(f"{live_server.url}/bugs/{source.pk}")

    page.locator("#unmerge").click()
    page.locator("#merge-form").wait_for()
    page.locator("#bug-badges .st-new").wait_for()
    source.refresh_from_db()
    assert source.status == "new" and source.duplicate_of_id is None
    assert sorted(FailureExample.objects.filter(bug=source).values_list("item_id", flat=True)) == [
        items[1].pk,
        items[2].pk,
    ]
    assert list(Bug.objects.get(pk=target.pk).tags.values_list("slug", flat=True)) == []
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("() => document.getElementById('merge-card').getBoundingClientRect().right") <= 390
    page.locator("#merge-card").screenshot(path="/tmp/loupe-bug-merge-phone.png")
