"""Comments on the item page in a browser, at phone width: the empty state, posting with Ctrl+Enter
and an @mention (recorded and mailed), a refused empty comment, deleting one's own."""

import pytest
from django.core import mail

from labeling.models import CommentMention, Role
from labeling.services.ingestion import items_ingest
from tests.browser.conftest import login
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = "/tmp/loupe-comments"


def test_post_comment_with_mention_on_item_page(page, live_server, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    manager = UserFactory(username="maya", email="maya@example.com")
    project = ProjectFactory(creator=manager, name="Support tickets")
    reviewer = add_member(project, UserFactory(username="rex"), Role.REVIEWER)
    items_ingest(project=project, rows=[{"external_id": "ticket-001", "payload": {"text": "Charged twice"}}])
    item = project.items.get()

    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/projects/{project.pk}/items/{item.pk}")
    box = page.locator("#item-comments")
    box.locator("text=No comments yet").wait_for()

    box.locator("button:has-text('Post')").click()
    assert box.locator(".cm-error").inner_text() == "Write something first."

    area = box.locator("textarea")
    area.fill("Is this billing or refund, @maya?")
    area.press("Control+Enter")
    box.locator(".cm-item").wait_for()
    assert "@maya" in box.locator(".cm-mention").inner_text()
    assert area.input_value() == ""
    assert box.locator(".badge").inner_text() == "1"
    assert list(CommentMention.objects.values_list("user__username", flat=True)) == ["maya"]
    assert [m.to for m in mail.outbox] == [["maya@example.com"]]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width}px)"
    page.screenshot(path=f"{SHOTS}-item-390.png", full_page=True)

    page.once("dialog", lambda d: d.accept())
    box.locator(".cm-delete").click()
    box.locator("text=No comments yet").wait_for()


def test_comment_with_mention_on_a_failing_item_from_the_bug_page(page, live_server, settings):
    from tests.bugqueue.factories import failing_bug

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    manager = UserFactory(username="maya", email="maya@example.com")
    project = ProjectFactory(creator=manager, name="Support tickets")
    reviewer = add_member(project, UserFactory(username="rex"), Role.REVIEWER)
    items_ingest(
        project=project,
        rows=[{"external_id": f"ticket-00{i}", "payload": {"text": f"Charged twice {i}"}} for i in (1, 2)],
    )
    first, second = project.items.order_by("id")
    bug = failing_bug(project, title="Billing read as refund", failures=[(first, "billing"), (second, "billing")])

    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/bugs/{bug.pk}")
    section = page.locator("#failure-comments")
    section.locator("#failure-comments-empty").wait_for()

    # The failure row's Comment button chooses its item and puts the cursor in the form.
    page.locator(f"button[data-comment-item='{second.pk}']").click()
    area = section.locator(f".item-comments[data-item='{second.pk}'] textarea")
    area.wait_for()
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    area.fill("Is this billing, @maya?")
    area.press("Control+Enter")
    listed = section.locator("ul.cm-list[aria-label='Comments on the failing items'] li.cm-item")
    listed.first.wait_for()
    assert "Is this billing, @maya?" in listed.first.inner_text()
    link = listed.first.locator("a.cm-item-link")
    assert link.get_attribute("href") == f"/projects/{project.pk}/items/{second.pk}"
    assert section.locator("#failure-comments-count").inner_text() == "1"
    assert list(CommentMention.objects.values_list("user__username", flat=True)) == ["maya"]
    assert [m.to for m in mail.outbox] == [["maya@example.com"]]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width}px)"
    page.screenshot(path=f"{SHOTS}-bug-390.png", full_page=True)

    link.click()
    page.locator("#item-comments .cm-item").wait_for()
    assert "@maya" in page.locator("#item-comments .cm-mention").inner_text()
