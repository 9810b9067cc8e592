"""The shared page helper static/loupe/api.js (Loupe.api, Loupe.say), through the rules page's Mute
button: the error shape, a body that is not JSON and an unreachable server each become a message in
words in the toast, and a request that gets through carries the CSRF token and changes the rule."""

import json

import pytest

from alerts.models import AlertRule
from tests.browser.conftest import login
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_errors_in_words_and_the_csrf_token(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    rule = AlertRule.objects.create(project=project, name="Regressions", event_types=["bug.regressed"])
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/alert-rules")
    toast = page.locator("#toast")
    mute = f"**/api/projects/{project.pk}/alert-rules/{rule.pk}/mute"

    body = {"error": {"code": "conflict", "message": "The rule changed meanwhile.", "fields": {"until": ["Too late."]}}}
    page.route(mute, lambda route: route.fulfill(status=409, content_type="application/json", body=json.dumps(body)))
    page.click(".rule-mute")
    page.wait_for_function("document.getElementById('toast').textContent.includes('changed meanwhile')")
    assert toast.inner_text() == "The rule changed meanwhile." and "error" in toast.get_attribute("class")
    page.unroute(mute)

    page.route(mute, lambda route: route.fulfill(status=502, content_type="text/html", body="<h1>Bad gateway</h1>"))
    page.click(".rule-mute")
    page.wait_for_function("document.getElementById('toast').textContent.includes('HTTP 502')")
    assert toast.inner_text() == "The server had a problem (HTTP 502); nothing was changed. Try again."
    page.unroute(mute)

    page.route(mute, lambda route: route.abort())
    page.click(".rule-mute")
    page.wait_for_function("document.getElementById('toast').textContent.includes('reach the server')")
    page.unroute(mute)

    described = page.evaluate(
        """() => new Loupe.ApiError(400, {code: "invalid", message: "name: Required.",
             fields: {name: ["Required."], channels: ["Unknown id 9."]}}).describe()"""
    )
    assert described == "name: Required. · channels: Unknown id 9."
    rule.refresh_from_db()
    assert rule.muted_until is None  # nothing got through so far

    with page.expect_request(mute) as sent:
        page.click(".rule-mute")
    assert sent.value.headers.get("x-csrftoken") and sent.value.headers.get("content-type") == "application/json"
    page.wait_for_selector(".rule-unmute")  # the page reloaded with the rule muted
    rule.refresh_from_db()
    assert rule.muted_until is not None
