"""Every error under /api/ is JSON in the one error shape with its status, whatever Django or DRF
answers it: unknown paths (any method, newlines included), wrong methods, CSRF failures of session
requests, unsupported media types, unhandled exceptions. Other paths keep Django's HTML pages."""

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from common.api.base import ApiView, JsonErrorsMixin
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db

METHODS = ["get", "post", "put", "patch", "delete"]


def _api_routes():
    """(concrete path, view class) for every route under /api/, from the URL configuration itself."""
    out = []

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if not route.startswith("api/") or "(?P<rest>" in route:
                    continue
                path = "/" + re.sub(r"<int:[^>]+>", "1", route)
                path = re.sub(r"<str:[^>]+>", "someone", path)
                path = re.sub(r"<path:[^>]+>", "v1", path)
                out.append((path, getattr(p.callback, "cls", None)))

    walk(get_resolver().url_patterns, "")
    return out


ROUTES = _api_routes()


def assert_error_shape(res, status):
    assert res.status_code == status, (res.status_code, res.content[:300])
    assert res["Content-Type"].startswith("application/json"), (res["Content-Type"], res.content[:300])
    body = res.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]


@pytest.fixture
def browser_client(db):
    """A logged-in browser session with CSRF enforced, as a real browser gets it."""
    user = UserFactory()
    project = ProjectFactory(creator=user)
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    return c, project


def test_the_url_configuration_has_the_api_routes():
    paths = {p for p, _ in ROUTES}
    assert len(paths) >= 40 and {"/api/projects/1/members", "/api/bugs", "/api/schema"} <= paths


def test_every_api_view_answers_errors_in_the_shape():
    """New API views must derive from ApiView (query parameter check, JSON errors)."""
    for path, cls in ROUTES:
        assert cls is not None and issubclass(cls, JsonErrorsMixin), path
        if path not in ("/api/schema", "/api/docs"):
            assert issubclass(cls, ApiView), path


def _is_a_route(path):
    """True when `path` matches a real API route rather than the catch-all 404 (a model version is a
    path: /api/projects/1/models/no/such is the model "no/such")."""
    from urllib.parse import unquote

    from django.urls import Resolver404, resolve

    try:
        match = resolve(unquote(path))
    except Resolver404:
        return False
    return "rest" not in match.kwargs


@pytest.mark.parametrize("path", sorted({p for p, _ in ROUTES}))
def test_unknown_sub_paths_are_json_404_for_every_method(browser_client, path):
    c, _ = browser_client
    for method in METHODS:
        for bad in (path + "/no/such", path + "/", path + "/x%0Ay/z", path + "%0A"):
            res = getattr(c, method)(bad)
            if bad.endswith("someone%0A") or _is_a_route(bad):
                # a username may hold a newline, a model version slashes: that is a route, and its answer
                assert_error_shape(res, res.status_code)
                assert res.status_code in (403, 404, 405)
                continue
            err = assert_error_shape(res, 404)
            assert err["code"] == "not_found"


@pytest.mark.parametrize("method", METHODS)
def test_unknown_paths_from_the_issue_are_json_404(browser_client, method):
    c, project = browser_client
    for path in (
        "/api/projects/abc/members",
        "/api/projects/abc",
        "/api/nope",
        "/api/",
        f"/api/projects/{project.pk}%0A",
        "/api/projects/%0A/items",
        "/api/bugs/1/%0A",
    ):
        body = {} if method == "get" else {"data": "{}", "content_type": "application/json"}
        assert_error_shape(getattr(c, method)(path, **body), 404)


@pytest.mark.parametrize("path,cls", ROUTES)
def test_wrong_methods_are_json_405(staff, path, cls):
    from tests.conftest import client_for

    c = client_for(staff)
    allowed = {m for m in METHODS if hasattr(cls, m)}
    for method in sorted(set(METHODS) - allowed):
        res = getattr(c, method)(path)
        err = assert_error_shape(res, 405)
        assert err["code"] == "method_not_allowed" and res.get("Allow"), path


def test_session_write_without_csrf_token_is_json_403(browser_client):
    c, project = browser_client
    res = c.patch(f"/api/projects/{project.pk}", data={"name": "x"}, content_type="application/json")
    err = assert_error_shape(res, 403)
    assert "CSRF" in err["message"]


def test_anonymous_is_json_401_or_403():
    c = Client(enforce_csrf_checks=True)
    for path, cls in ROUTES:
        if path in ("/api/schema", "/api/docs", "/api/auth/token"):
            continue
        method = "get" if hasattr(cls, "get") else "post"
        res = getattr(c, method)(path)
        assert res.status_code in (401, 403), path
        assert_error_shape(res, res.status_code)


def test_unsupported_media_type_is_json_415(user):
    from labeling.services.projects import user_allow_project_create
    from tests.conftest import client_for

    user_allow_project_create(user=user)  # past the role check, to the body
    res = client_for(user).post("/api/projects", data="name=x", content_type="text/plain")
    assert_error_shape(res, 415)


def test_not_acceptable_is_json_406(user):
    from tests.conftest import client_for

    res = client_for(user).get("/api/me", HTTP_ACCEPT="text/html")
    assert_error_shape(res, 406)


def test_schema_and_docs_errors_are_json(user):
    c = Client()
    c.force_login(user)
    assert_error_shape(c.post("/api/schema"), 405)
    assert_error_shape(c.delete("/api/docs"), 405)
    assert c.get("/api/schema?format=json").status_code == 200


def test_an_unhandled_exception_under_api_is_json_500(user, monkeypatch):
    from labeling.api import views_accounts

    def boom(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(views_accounts.MeApi, "get", boom)
    c = Client(raise_request_exception=False)
    c.force_login(user)
    err = assert_error_shape(c.get("/api/me"), 500)
    assert err["code"] == "server_error" and "boom" not in err["message"]


def test_pages_outside_the_api_keep_html_errors(user):
    c = Client()
    c.force_login(user)
    res = c.get("/projects/999999/")
    assert res.status_code == 404 and res["Content-Type"].startswith("text/html")
    res = c.get("/no-such-page")
    assert res.status_code == 404 and res["Content-Type"].startswith("text/html")
    res = Client(enforce_csrf_checks=True).post("/login/", {"username": "a", "password": "b"})
    assert res.status_code == 403 and res["Content-Type"].startswith("text/html")


def test_a_member_route_with_a_bad_id_is_json_404_not_csrf_403():
    """The example from the issue: POST to a route whose id is not a number."""
    user = UserFactory()
    project = ProjectFactory(creator=user)
    add_member(project, UserFactory())
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    err = assert_error_shape(c.post("/api/projects/abc/members", {"username": "x", "role": "annotator"}), 404)
    assert err["message"] == "No such API endpoint."
