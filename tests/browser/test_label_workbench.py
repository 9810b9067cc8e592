"""The label page as a workbench: 30 items by keyboard, going back with z to change answers, the
count of what is left moving with everyone's work, keys pressed while loading, and the phone layout."""

import time

import pytest

from labeling.models import Annotation, AnnotationEdit
from labeling.services.annotations import annotation_submit
from labeling.services.queue.claim import assignment_claim_next
from tests.browser.conftest import login
from tests.labeling.factories import ItemFactory, annotators, queue_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait_until(page, condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        page.wait_for_timeout(50)  # polling the database/page, not timing


def shown(page):
    return page.locator("#item-ext").inner_text()


def left(page):
    return page.locator("#remaining").inner_text()


def test_thirty_items_undo_count_and_queued_keys(page, live_server):
    project, items = queue_project(items=36, overlap=2)
    a, b, c = annotators(project, 3)
    login(page, live_server, a)
    page.goto(f"{live_server.url}/projects/{project.id}/label")
    page.wait_for_selector("#item-text:not([hidden])")
    wait_until(page, lambda: left(page) == "36 left", what=lambda: f"36 left (shows {left(page)!r})")

    keys = "123"
    for i in range(30):
        ext = shown(page)
        page.keyboard.press(keys[i % 3])
        wait_until(page, lambda: shown(page) not in (ext, "…"), what="the next item")  # noqa: B023
    wait_until(page, lambda: Annotation.objects.filter(annotator=a).count() == 30, what="30 stored")
    wait_until(page, lambda: left(page) == "6 left", what=lambda: f"6 left (shows {left(page)!r})")

    # z opens the latest answer; a digit relabels it.
    latest = Annotation.objects.filter(annotator=a).latest("id")
    wait_until(page, lambda: page.locator(".recent-btn").count() == 20, what="the last 20 answers")
    # The list refreshes shortly after each answer is stored: wait until it starts with the latest.
    wait_until(
        page,
        lambda: page.locator(".recent-btn").first.get_attribute("data-annotation") == str(latest.pk),
        what="the latest answer first in the list",
    )
    page.keyboard.press("z")
    assert page.locator("#edit-banner").is_visible()
    new = "pos" if latest.label != "pos" else "neg"
    page.keyboard.press("1" if new == "pos" else "2")
    wait_until(page, lambda: Annotation.objects.get(pk=latest.pk).label == new, what="the latest relabeled")
    # An older one, by clicking it in the list.
    older = Annotation.objects.filter(annotator=a).order_by("-id")[3]
    page.click(f".recent-btn[data-annotation='{older.pk}']")
    assert page.locator("#edit-banner").is_visible()
    page.keyboard.press("3" if older.label != "neu" else "2")
    wait_until(page, lambda: Annotation.objects.get(pk=older.pk).label != older.label, what="the older relabeled")
    assert AnnotationEdit.objects.filter(annotation__annotator=a).count() == 2
    assert Annotation.objects.filter(annotator=a).count() == 30  # edits add no answers
    page.screenshot(path="/tmp/loupe-label-wb-edit.png", full_page=True)

    # Others finish an item this annotator has not seen: the count moves after the next refresh.
    untouched = [i for i in items if not i.assignments.filter(annotator=a).exists()]
    target = untouched[0]
    for other in (b, c):
        for _ in range(40):
            claim = assignment_claim_next(project=project, annotator=other)
            if claim.item_id == target.pk:
                annotation_submit(assignment_id=claim.assignment_id, annotator=other, label="pos")
                break
            annotation_submit(assignment_id=claim.assignment_id, annotator=other, label="neu")

    # Esc goes back to the queue; the next answer refreshes the count (one done by a, one by others).
    page.keyboard.press("Escape")
    assert not page.locator("#edit-banner").is_visible()
    ext = shown(page)
    page.keyboard.press("1")
    wait_until(page, lambda: shown(page) != ext, what="the next item")
    wait_until(page, lambda: left(page) == "4 left", what=lambda: f"4 left (shows {left(page)!r})")

    # Keys pressed while the next item loads are kept for it.
    held = []
    page.route("**/queue/next", lambda route: held.append(route))
    for _ in range(3):
        if page.locator("#item-loading").is_visible():
            break
        ext = shown(page)
        page.keyboard.press("1")
    wait_until(page, lambda: page.locator("#item-loading").is_visible(), what="loading")
    before = Annotation.objects.filter(annotator=a).count()
    page.keyboard.press("3")
    assert "taken" in page.locator("#status").inner_text()
    page.screenshot(path="/tmp/loupe-label-wb-queued.png", full_page=True)
    page.unroute("**/queue/next")  # lets the held requests through
    for route in held:
        try:
            route.continue_()
        except Exception:  # already let through by unroute
            pass
    wait_until(
        page,
        lambda: (
            Annotation.objects.filter(annotator=a, label="neu", id__gt=latest.pk).count() == 1
            and Annotation.objects.filter(annotator=a).count() >= before + 1
        ),
        what="the queued key applied to the next item",
    )
    page.screenshot(path="/tmp/loupe-label-wb-desktop.png", full_page=True)


def test_phone_layout_image_and_highlight(browser, live_server):
    project, _ = queue_project(items=0, overlap=1)
    ItemFactory(
        project=project,
        payload={
            "text": "The <b>parcel</b> arrived late " * 20 + "and broken.",
            "image_url": "/media/items/parcel.png",
        },
    )
    (a,) = annotators(project, 1)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        login(page, live_server, a)
        page.goto(f"{live_server.url}/projects/{project.id}/label?q=parcel+broken")
        page.wait_for_selector("#item-text:not([hidden])")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
        assert page.get_by_role("button", name="Log out").is_visible()
        assert page.locator("#item-media img").count() == 1
        assert page.locator("#item-text mark").count() == 21
        assert page.locator("#item-text b").count() == 0  # shown as text, never parsed
        assert "<b>parcel</b>" in page.locator("#item-text").inner_text()
        for btn in page.locator(".label-btn").all():
            box = btn.bounding_box()
            assert box["height"] >= 44, box
            assert box["y"] >= 0 and box["y"] + box["height"] <= 844, box
        page.screenshot(path="/tmp/loupe-label-wb-phone.png", full_page=False)
    finally:
        context.close()
