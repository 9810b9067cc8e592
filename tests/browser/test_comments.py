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
