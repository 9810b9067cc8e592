"""The labeling page rides out a server that answers 503 (its database dropped the connection for a
moment) or a network error: it tries again with backoff before it shows any error."""

import json
import time

import pytest

from labeling.models import Annotation
from tests.browser.conftest import login
from tests.labeling.factories import annotators, queue_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every error message the status area ever shows, recorded as it appears.
RECORD_ERRORS = """
window.__shownErrors = [];
new MutationObserver(() => {
  for (const el of document.querySelectorAll("#status .msg.error")) window.__shownErrors.push(el.textContent);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def test_a_submit_answered_503_then_a_network_error_is_retried_without_showing_an_error(page, live_server):
    project, _ = queue_project(items=3, overlap=1)
    (user,) = annotators(project, 1)
    attempts = []

    def flaky(route):
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            route.fulfill(
                status=503,
                headers={"Retry-After": "1"},
                content_type="application/json",
                body=json.dumps({"error": {"code": "database_unavailable", "message": "later"}}),
            )
        elif len(attempts) == 2:
            route.abort("connectionreset")
        else:
            route.continue_()

    login(page, live_server, user)
    page.add_init_script(RECORD_ERRORS)
    page.route("**/api/assignments/*/submit", flaky)
    page.goto(f"{live_server.url}/projects/{project.id}/label")
    page.wait_for_selector("#item-text:not([hidden])")
    page.keyboard.press("1")
    deadline = time.monotonic() + 30
    while not Annotation.objects.filter(annotator=user).exists():
        assert time.monotonic() < deadline, f"the submit was never stored ({len(attempts)} attempts)"
        page.wait_for_timeout(50)  # polling the database, not timing
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.7  # the server's Retry-After (1 s, jittered down by at most a quarter)
    assert page.evaluate("window.__shownErrors") == []
