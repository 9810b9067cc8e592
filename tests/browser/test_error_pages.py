"""Error pages are Loupe pages: the navigation, the stylesheet, and the reason in words."""

from unittest import mock

import pytest
from django.db import OperationalError

from labeling.models import Role
from tests.browser.conftest import login
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_page(page, url):
    """Go to url; return the main response and every sub-resource that failed or answered 4xx/5xx."""
    bad = []
    # The browser fetches the icon after a page has loaded; the next navigation cancels that fetch
    # (net::ERR_ABORTED, resource type "other"), which says nothing about the page. A missing icon
    # still shows: it answers 404, which the response listener counts.
    page.on(
        "requestfailed",
        lambda req: (
            not (req.failure == "net::ERR_ABORTED" and req.resource_type == "other")
            and bad.append((req.url, req.failure))
        ),
    )
    page.on(
        "response",
        lambda res: res.request.resource_type != "document" and res.status >= 400 and bad.append((res.url, res.status)),
    )
    response = page.goto(url)
    page.wait_for_load_state("load")
    return response, bad


def assert_loupe_page(page, bad):
    assert bad == []
    assert page.locator("header.topbar .brand").is_visible()
    for link in ("Projects", "Bugs", "Triage", "API"):
        assert page.locator("nav.mainnav a", has_text=link).is_visible(), link
    # The stylesheet applied: the card is laid out by app.css, not the browser's defaults.
    assert page.locator(".error-page").evaluate("el => getComputedStyle(el).borderRadius") not in ("", "0px")


def test_an_annotator_on_the_review_page_reads_why_not(page, live_server):
    project = ProjectFactory()
    annotator = add_member(project, UserFactory(), Role.ANNOTATOR)
    login(page, live_server, annotator)
    response, bad = open_page(page, f"{live_server.url}/projects/{project.pk}/review")
    assert response.status == 403
    assert_loupe_page(page, bad)
    assert page.locator("h1").inner_text() == "Not allowed"
    assert page.locator(".error-reason").inner_text() == "This needs the reviewer or manager role in this project."
    assert annotator.username in page.locator(".userbox").inner_text()


def test_unknown_pages_and_projects_answer_a_loupe_404(page, live_server):
    user = UserFactory()
    login(page, live_server, user)
    response, bad = open_page(page, f"{live_server.url}/no/such/page")
    assert response.status == 404
    assert_loupe_page(page, bad)
    assert page.locator(".error-reason").inner_text() == "There is no page at this address."
    other = ProjectFactory()  # exists, but this user is no member: the same 404 as a missing project
    response, bad = open_page(page, f"{live_server.url}/projects/{other.pk}/")
    assert response.status == 404
    assert_loupe_page(page, bad)
    assert page.locator(".error-reason").inner_text() == "Project not found"


def test_a_server_error_answers_the_loupe_500_page(page, live_server):
    user = UserFactory()
    login(page, live_server, user)
    with mock.patch("labeling.views.projects.project_list_with_counts", side_effect=OperationalError("database gone")):
        response, bad = open_page(page, f"{live_server.url}/")
    assert response.status == 500
    assert_loupe_page(page, bad)
    assert page.locator("h1").inner_text() == "Something went wrong"
    assert "database gone" not in page.content()  # no internals shown
