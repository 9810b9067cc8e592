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
