"""Error pages render as Loupe pages, and the 500 page renders when the database is what failed."""

import pytest
from django.db import OperationalError, connection
from django.test import Client

from tests.labeling.factories import UserFactory


def fail_every_query(execute, sql, params, many, context):
    raise OperationalError("the database went away")


def break_every_query(execute, sql, params, many, context):
    raise RuntimeError("the database went away")  # not a connection error: an ordinary 500


@pytest.mark.django_db
def test_the_500_page_needs_no_database():
    client = Client(raise_request_exception=False)
    client.force_login(UserFactory())
    with connection.execute_wrapper(break_every_query):  # the session and user lookups fail first
        response = client.get("/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html and "/static/loupe/app.css" in html
    for href in ('href="/"', 'href="/bugs"', 'href="/triage"', 'href="/api/docs"'):
        assert href in html, href
    assert "went away" not in html


@pytest.mark.django_db
def test_a_bad_request_answers_the_loupe_400_page():
    response = Client().get("/", HTTP_HOST="not-allowed.example")  # DisallowedHost: SuspiciousOperation
    assert response.status_code == 400
    html = response.content.decode()
    assert "Bad request" in html and 'class="mainnav"' in html


@pytest.mark.django_db
def test_a_failed_csrf_check_answers_a_loupe_403_page():
    client = Client(enforce_csrf_checks=True)
    user = UserFactory()
    client.force_login(user)
    response = client.post("/logout/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "Form not accepted" in html and 'class="mainnav"' in html and user.username in html


@pytest.mark.django_db
def test_the_browsers_favicon_request_finds_loupes_icon():
    """Pages without an icon link (the admin's) make browsers ask /favicon.ico: no 404 for it."""
    response = Client().get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("loupe/favicon.svg")


@pytest.mark.django_db
def test_a_lost_database_answers_the_loupe_503_page_without_touching_it():
    client = Client(raise_request_exception=False)
    client.force_login(UserFactory())
    with connection.execute_wrapper(fail_every_query):
        response = client.get("/")
    assert response.status_code == 503 and response["Retry-After"]
    html = response.content.decode()
    assert "Back in a moment" in html and "/static/loupe/app.css" in html and 'http-equiv="refresh"' in html
    for href in ('href="/"', 'href="/bugs"', 'href="/triage"', 'href="/api/docs"'):
        assert href in html, href
    assert "went away" not in html
