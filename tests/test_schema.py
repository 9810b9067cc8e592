import warnings

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_openapi_schema_builds_without_warnings(tmp_path, capsys):
    out = tmp_path / "schema.yml"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call_command("spectacular", "--file", str(out), "--validate", "--fail-on-warn")
    text = out.read_text()
    assert "/api/projects/{project_id}/items" in text and "/api/auth/token" in text


@pytest.mark.django_db
def test_schema_and_docs_are_served(user):
    from tests.conftest import client_for

    c = client_for(user)
    assert c.get("/api/schema").status_code == 200
    res = c.get("/api/docs")
    assert res.status_code == 200 and b"cdn" not in res.content.lower()


@pytest.mark.django_db
def test_paginated_lists_are_documented_as_pages():
    """items, annotations, exports, quality runs and a run's items answer {next, previous, results}:
    the schema says so (it used to say "array")."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    for path in (
        "/api/projects/{project_id}/items",
        "/api/projects/{project_id}/annotations",
        "/api/projects/{project_id}/exports",
        "/api/projects/{project_id}/quality-runs",
        "/api/quality-runs/{run_id}/items",
    ):
        op = schema["paths"][path]["get"]
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        page = components[ref.rsplit("/", 1)[1]]
        assert page["type"] == "object" and page["properties"]["results"]["type"] == "array", path
        assert {"next", "previous", "results"} <= set(page["required"]), path
        query = {p["name"] for p in op["parameters"] if p["in"] == "query"}
        assert "page_size" in query and ({"cursor"} <= query or {"page"} <= query), (path, query)
