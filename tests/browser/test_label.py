"""The labeling page, driven by keyboard only in headless chromium."""

import time

import pytest

from labeling.models import Annotation, Assignment, AssignmentStatus
from labeling.services.projects import LabelSpec
from tests.browser.conftest import login
from tests.labeling.factories import ItemFactory, ProjectFactory, UserFactory, add_member, annotators, queue_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait_until(page, condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        page.wait_for_timeout(50)  # polling the database/page, not timing


def shown_item(page):
    return page.locator("#item-ext").inner_text()


def test_label_three_items_with_the_keyboard_only(page, live_server):
    project, items = queue_project(items=4, overlap=1)
    (user,) = annotators(project, 1)
    login(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/label")
    page.wait_for_selector("#item-text:not([hidden])")
    assert "Clearly positive sentiment." in page.locator("#labels").inner_text()  # guidelines on the page

    answers = {}
    for key, label in (("1", "pos"), ("2", "neg"), ("3", "neu")):
        ext = shown_item(page)
        answers[ext] = label
        page.keyboard.press(key)
        wait_until(page, lambda: shown_item(page) not in (ext, "…"), what="the next item")  # noqa: B023
    wait_until(page, lambda: Annotation.objects.filter(annotator=user).count() == 3, what="three stored annotations")
    stored = dict(Annotation.objects.filter(annotator=user).values_list("item__external_id", "label"))
    assert stored == answers
    assert set(answers) == {i.external_id for i in items[:3]}
    assert Annotation.objects.filter(annotator=user, seconds_spent__isnull=False).count() == 3
    wait_until(
        page,
        lambda: page.locator("#done-today").inner_text() == "3",
        what=lambda: (
            f"progress (shows {page.locator('#done-today').inner_text()!r}, "
            f"status {page.locator('#status').inner_text() if page.locator('#status').count() else ''!r})"
        ),
    )
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.screenshot(path="/tmp/loupe-label.png", full_page=True)
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()


def test_user_text_is_rendered_as_text_and_fields_as_a_table(page, live_server):
    project, _ = queue_project(items=0, overlap=1)
    ItemFactory(
        project=project,
        external_id="x1",
        payload={"text": "<b>bold?</b> <img src=x onerror=alert(1)>", "channel": "chat", "meta": {"n": 2}},
    )
    (user,) = annotators(project, 1)
    login(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/label")
    page.wait_for_selector("#item-text:not([hidden])")
    assert page.locator("#item-text").inner_text() == "<b>bold?</b> <img src=x onerror=alert(1)>"
    assert page.locator("#item-text img, #item-text b").count() == 0
    fields = page.locator("#item-fields").inner_text()
    assert "channel" in fields and "chat" in fields and '{"n":2}' in fields


def test_skip_with_s_then_the_empty_state(page, live_server):
    project, (only,) = queue_project(items=1, overlap=1)
    (user,) = annotators(project, 1)
    login(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/label")
    page.wait_for_selector("#item-text:not([hidden])")
    page.keyboard.press("s")
    page.wait_for_selector("#empty:not([hidden])")
    assert "Nothing left for you" in page.locator("#empty").inner_text()
    wait_until(
        page,
        lambda: Assignment.objects.filter(annotator=user, status=AssignmentStatus.SKIPPED).count() == 1,
        what="the skip to be stored",
    )
    page.screenshot(path="/tmp/loupe-label-empty.png", full_page=True)


def test_letter_hotkeys_and_position_numbers(page, live_server):
    project = ProjectFactory(
        creator=UserFactory(),
        annotations_per_item=1,
        labels=[
            LabelSpec("cat", "Cat", "Felines.", "c"),
            LabelSpec("dog", "Dog", "Canines.", ""),
        ],
    )
    for i in range(2):
        ItemFactory(project=project, external_id=f"pet{i}")
    user = add_member(project, UserFactory())
    login(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/label")
    page.wait_for_selector("#item-text:not([hidden])")
    page.keyboard.press("c")
    wait_until(page, lambda: shown_item(page) == "pet1", what="the second item")
    page.keyboard.press("2")  # dog has no hotkey: its position number labels it
    wait_until(page, lambda: Annotation.objects.filter(annotator=user).count() == 2, what="two annotations")
    assert dict(Annotation.objects.values_list("item__external_id", "label")) == {"pet0": "cat", "pet1": "dog"}


def test_a_failed_submission_is_shown_and_retried_never_dropped(page, live_server):
    project, items = queue_project(items=3, overlap=1)
    (user,) = annotators(project, 1)
    failures = {"left": 2}

    def flaky(route):
        if failures["left"] > 0:
            failures["left"] -= 1
            # (a 500: a 503 is first tried again quietly, see test_label_retry.py)
            route.fulfill(
                status=500,
                content_type="application/json",
                body='{"error": {"code": "server_error", "message": "Server error"}}',
            )
        else:
            route.continue_()

    page.route("**/api/assignments/*/submit", flaky)
    login(page, live_server, user)
    page.goto(f"{live_server.url}/projects/{project.id}/label")
    page.wait_for_selector("#item-text:not([hidden])")
    first = shown_item(page)
    page.keyboard.press("2")
    page.wait_for_selector("#status .msg.error")
    assert "not saved yet" in page.locator("#status").inner_text()
    assert shown_item(page) != first  # the annotator keeps working meanwhile
    page.screenshot(path="/tmp/loupe-label-retry.png", full_page=True)
    wait_until(page, lambda: Annotation.objects.filter(annotator=user).count() == 1, timeout=20, what="the retry")
    assert Annotation.objects.get(annotator=user).item.external_id == first
    wait_until(page, lambda: page.locator("#status li").count() == 0, what="the message to clear")
