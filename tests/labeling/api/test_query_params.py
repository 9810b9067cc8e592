"""A query parameter an operation does not declare is a 400 naming it (never silently ignored), and
every parameter the OpenAPI schema lists is accepted: the schema and the check agree, endpoint by
endpoint, for every operation under /api/."""

import re

import pytest

from labeling.models import ItemStatus
from tests.conftest import client_for
from tests.labeling.factories import ItemFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

SAMPLE = {"integer": "1", "boolean": "true", "number": "0.5"}


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                concrete = re.sub(r"\{[^}]+\}", "999999", path)
                query = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
                yield method, path, concrete, query


def _value(param):
    s = param.get("schema", {})
    if "enum" in s:
        return str(s["enum"][0])
    return SAMPLE.get(s.get("type"), "x")


def test_every_operation_refuses_an_unknown_query_parameter(schema, staff):
    c = client_for(staff)
    seen = 0
    for method, path, concrete, _ in _operations(schema):
        res = getattr(c, method)(f"{concrete}?zz_not_a_param=1", format="json")
        assert res.status_code == 400, (method, path, res.status_code, res.content[:200])
        err = res.json()["error"]
        assert err["code"] == "unknown_parameter" and "zz_not_a_param" in err["message"], (method, path, err)
        assert err["fields"] == {"zz_not_a_param": ["Unknown query parameter."]}
        seen += 1
    assert seen >= 55


def test_every_parameter_the_schema_lists_is_accepted(schema, staff):
    c = client_for(staff)
    checked = 0
    for method, path, concrete, query in _operations(schema):
        if not query:
            continue
        params = {name: _value(p) for name, p in query.items()}
        res = (
            getattr(c, method)(concrete, params, format="json")
            if method == "get"
            else getattr(c, method)(concrete + "?" + "&".join(f"{k}={v}" for k, v in params.items()), format="json")
        )
        body = res.json() if res["Content-Type"].startswith("application/json") else {}
        assert body.get("error", {}).get("code") != "unknown_parameter", (method, path, body)
        checked += 1
    assert checked >= 14


@pytest.fixture
def project_with_items(db):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    for i in range(3):
        ItemFactory(project=project, external_id=f"t{i}")
    return project, manager


@pytest.mark.parametrize("query,name", [("text=refund", "text"), ("label=", "label"), ("search=x&label=cat", "search")])
def test_item_list_with_an_unknown_filter_is_400_not_the_unfiltered_page(project_with_items, query, name):
    project, manager = project_with_items
    res = client_for(manager).get(f"/api/projects/{project.pk}/items?{query}")
    assert res.status_code == 400
    err = res.json()["error"]
    assert name in err["fields"] and name in err["message"]


def test_declared_filters_and_pagination_still_work(project_with_items):
    project, manager = project_with_items
    c = client_for(manager)
    res = c.get(f"/api/projects/{project.pk}/items", {"status": ItemStatus.OPEN, "page_size": 2})
    assert res.status_code == 200, res.json()
    body = res.json()
    assert len(body["results"]) == 2 and body["next"] and body["previous"] is None
    follow = c.get(body["next"])
    assert follow.status_code == 200 and len(follow.json()["results"]) == 1
    assert c.get(f"/api/projects/{project.pk}/items", {"external_id": "t1"}).json()["results"][0]["external_id"] == "t1"


@pytest.mark.parametrize("size", ["0", "-1", "1001", "ten", ""])
def test_a_bad_page_size_is_400(project_with_items, size):
    project, manager = project_with_items
    res = client_for(manager).get(f"/api/projects/{project.pk}/items?page_size={size}")
    assert res.status_code == 400 and "page_size" in res.json()["error"]["fields"]


def test_bug_list_filters_are_declared_and_others_refused(project_with_items):
    project, manager = project_with_items
    c = client_for(manager)
    ok = c.get(
        "/api/bugs",
        {
            "project": project.pk,
            "status": "open",
            "priority": "p1",
            "kind": "failed_prediction",
            "assignee": "me",
            "q": "x",
            "regressed": "false",
            "ordering": "priority",
            "page": 1,
            "page_size": 10,
        },
    )
    assert ok.status_code == 200, ok.json()
    bad = c.get("/api/bugs", {"project": project.pk, "owner": "me"})
    assert bad.status_code == 400 and "owner" in bad.json()["error"]["fields"]


def test_anonymous_gets_401_before_any_parameter_check():
    from rest_framework.test import APIClient

    res = APIClient().get("/api/projects?zz=1")
    assert res.status_code == 401 and res.json()["error"]["code"] == "not_authenticated"


def test_the_ui_dataset_download_link_is_accepted(staff):
    """templates/bugqueue/datasets.html links to .../versions/{n}/items?format=jsonl: the parameter is
    declared, so the answer is the dataset's (here: not found), not an unknown-parameter 400."""
    res = client_for(staff).get("/api/datasets/999999/versions/1/items?format=jsonl")
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"


def test_a_nul_in_a_query_parameter_is_400(project_with_items):
    project, manager = project_with_items
    res = client_for(manager).get(f"/api/projects/{project.pk}/items?external_id=a%00b")
    assert res.status_code == 400 and "external_id" in res.json()["error"]["fields"]
    assert client_for(manager).get("/api/bugs?tag=%00").status_code == 400


@pytest.mark.parametrize("page", ["0", "x", "", "1&page=2"])
def test_a_bad_page_number_is_400(staff, page):
    res = client_for(staff).get(f"/api/bugs?page={page}")
    assert res.status_code == 400 and "page" in res.json()["error"]["fields"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": 0}, "name"),
        ({"accept_threshold": False}, "accept_threshold"),
        ({"lease_seconds": "600"}, "lease_seconds"),
        ({"annotations_per_item": True}, "annotations_per_item"),
    ],
)
def test_json_values_of_another_type_than_the_schema_says_are_400(project_with_items, body, field):
    project, manager = project_with_items
    before = client_for(manager).get(f"/api/projects/{project.pk}").json()
    res = client_for(manager).patch(f"/api/projects/{project.pk}", body, format="json")
    assert res.status_code == 400 and field in res.json()["error"]["fields"], res.json()
    assert client_for(manager).get(f"/api/projects/{project.pk}").json() == before


def test_nested_json_types_are_checked_too(staff):
    body = {"name": "P", "labels": [{"key": "a", "name": "A"}, {"key": "b", "name": 7}]}
    res = client_for(staff).post("/api/projects", body, format="json")
    assert res.status_code == 400 and res.json()["error"]["fields"] == {
        "labels": {"1": {"name": ["Must be a string."]}}
    }


def test_an_empty_patch_of_settings_changes_nothing(project_with_items):
    project, manager = project_with_items
    c = client_for(manager)
    for path in (f"/api/projects/{project.pk}/quality-settings", f"/api/projects/{project.pk}/bug-settings"):
        before = c.get(path).json()
        res = c.patch(path, {}, format="json")
        assert res.status_code == 200 and res.json() == before


def test_form_bodies_are_415(project_with_items):
    project, manager = project_with_items
    res = client_for(manager).patch(f"/api/projects/{project.pk}", {"name": "x"}, format="multipart")
    assert res.status_code == 415 and res.json()["error"]["code"] == "unsupported_media_type"


def test_an_empty_enum_filter_is_400_not_no_filter(project_with_items):
    project, manager = project_with_items
    res = client_for(manager).get(f"/api/projects/{project.pk}/items?status=")
    assert res.status_code == 400 and "status" in res.json()["error"]["fields"]
