"""JSON bodies are read one way (common.api.json_body) by every endpoint: too deep, NUL, lone
surrogates, not UTF-8 and NaN are a 400 naming where, and nothing is written."""

import json

import orjson
import pytest

from common.api.json_body import JSONInputError, json_loads
from tests.input_world import client, error_of, input_world
from tests.labeling.factories import PASSWORD
from tests.rows import snapshot

JSON = "application/json"
DEEP = b"[" * 100_000


def nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.fixture
def world(db):
    return input_world()


def send(world, actor, method, path, body: bytes, content_type=JSON):
    path = path.format(**world["ids"])
    return client(world["users"][actor]).generic(method, path, body, content_type=content_type)


def refused(world, actor, method, path, body, content_type=JSON, status=400) -> dict:
    before = snapshot()
    error = error_of(send(world, actor, method, path, body, content_type), status)
    assert snapshot() == before, "a refused request wrote"
    return error


# --- the reader ----------------------------------------------------------------------------------


def test_depth_up_to_the_limit_is_read_and_one_more_is_refused(settings):
    settings.LOUPE_MAX_JSON_DEPTH = 64
    assert json_loads(nested(64).encode())
    with pytest.raises(JSONInputError, match="nested deeper than 64 levels"):
        json_loads(nested(65).encode())
    with pytest.raises(JSONInputError, match="nested deeper than 64"):
        json_loads(b"[" * 65 + b"]" * 65)


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b"[" * 2000 + b"12345678901234567890" + b"]" * 2000,
    ],
)
def test_any_depth_is_refused_without_recursion_error(body):
    with pytest.raises(ValueError):
        json_loads(body)


@pytest.mark.parametrize(
    "text,path,what",
    [
        ('[{"payload": {"text": "a\\u0000b"}}]', "$[0].payload.text", "NUL"),
        ('[{"x": 1}, {"payload": {"te\\u0000xt": 1}}]', "$[1].payload", "NUL"),
        ('{"rows": [{"external_id": "\\ud800"}]}', "$.rows[0].external_id", "lone surrogate"),
        ('{"a b": {"\\udfff": 2}}', '$["a b"]', "lone surrogate"),
        ('"\\u0000"', None, "NUL"),
    ],
)
def test_nul_and_lone_surrogates_are_refused_with_their_place(text, path, what):
    with pytest.raises(JSONInputError) as caught:
        json_loads(text.encode())
    assert caught.value.path == path and what in str(caught.value)
    if path and path[2:3].isdigit():
        assert caught.value.row == int(path[2])


@pytest.mark.parametrize(
    "body",
    [
        b'["\xed\xa0\x80"]',
        b'["\xff"]',
        b"\xef\xbb\xbf[1]",
        b"[NaN]",
        b"[Infinity]",
        b"[-Infinity]",
        b"[1e400]",
        b"[12345678901234567890, 1e400]",
    ],
)
def test_what_is_not_utf8_json_with_finite_numbers_is_refused(body):
    with pytest.raises(ValueError):
        json_loads(body)


def test_ordinary_documents_read_as_before():
    assert json_loads(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert json_loads(b"[123456789012345678901234567890]") == [123456789012345678901234567890]  # exact, not a float
    assert json_loads('["caf\u00e9 \\u00e9 \\ud83d\\ude00", "a\\\\u0000b"]'.encode()) == ["café é 😀", "a\\u0000b"]
    assert json_loads(b'{"k": "v", "k": "w"}') == {"k": "w"}  # duplicate keys: the last wins, as everywhere


# --- through the API: every JSON endpoint, the anonymous one included ---------------------------

DEEP_ENDPOINTS = [
    ("anon", "POST", "/api/auth/token"),
    ("manager", "POST", "/api/projects/{p}/items"),
    ("annotator", "POST", "/api/assignments/{a}/submit"),
    ("manager", "PATCH", "/api/projects/{p}"),
    ("manager", "POST", "/api/bugs"),
    ("manager", "POST", "/api/projects/{p}/ground-truth"),
]


@pytest.mark.parametrize("actor,method,path", DEEP_ENDPOINTS)
def test_deeply_nested_body_is_a_400(world, actor, method, path):
    error = refused(world, actor, method, path, DEEP)
    assert error["code"] == "parse_error" and "nested deeper than 64 levels" in error["message"]


def test_payload_nested_3000_deep_is_a_400_naming_the_row(world):
    body = f'[{{"external_id": "ok", "payload": {{}}}}, {{"external_id": "deep", "payload": {nested(3000)}}}]'
    error = refused(world, "manager", "POST", "/api/projects/{p}/items", body.encode())
    assert "nested deeper than 64" in error["message"]


def test_payload_nested_100_deep_is_a_400_naming_the_row(world):
    body = f'[{{"external_id": "ok", "payload": {{}}}}, {{"external_id": "deep", "payload": {nested(100)}}}]'
    error = refused(world, "manager", "POST", "/api/projects/{p}/items", body.encode())
    assert error["fields"]["rows"][0]["index"] == 1 and "$[1].payload" in error["message"]


def test_failure_payload_nested_3000_deep_is_a_400(world):
    body = '{"project": %d, "title": "t", "kind": "user_report", "failures": [{"payload": %s}]}' % (
        world["ids"]["p"],
        nested(3000),
    )
    assert "nested deeper" in refused(world, "manager", "POST", "/api/bugs", body.encode())["message"]


ITEMS = "/api/projects/{p}/items"


@pytest.mark.parametrize(
    "body,where",
    [
        ('[{"external_id": "n1", "payload": {"text": "a\\u0000b"}}]', "$[0].payload.text"),
        (
            '[{"external_id": "ok", "payload": {}}, {"external_id": "n1", "payload": {"te\\u0000xt": "ab"}}]',
            "$[1].payload",
        ),
        ('[{"external_id": "n\\u00001", "payload": {}}]', "$[0].external_id"),
        ('[{"external_id": "s1", "payload": {"text": "\\ud800"}}]', "$[0].payload.text"),
        ('[{"external_id": "s1", "payload": {"\\udfff": 1}}]', "$[0].payload"),
        ('[{"external_id": "s\\ud83d", "payload": {}}]', "$[0].external_id"),
    ],
)
def test_nul_or_lone_surrogate_in_items_is_a_400_naming_field_and_row(world, body, where):
    error = refused(world, "manager", "POST", ITEMS, body.encode())
    assert error["code"] == "parse_error" and where in error["message"]
    assert error["fields"]["rows"][0]["index"] == int(where[2]) and where in error["fields"]["rows"][0]["message"]


def test_nul_in_json_lines_names_the_line(world):
    body = b'{"external_id": "ok", "payload": {}}\n{"external_id": "x\\u0000", "payload": {}}\n'
    error = refused(world, "manager", "POST", ITEMS, body, "application/x-ndjson")
    assert error["fields"]["rows"] == [{"index": 1, "line": 2, "message": error["fields"]["rows"][0]["message"]}]
    assert "$.external_id" in error["message"] and "NUL" in error["message"]


@pytest.mark.parametrize(
    "failure,where",
    [
        ('{"payload": {"text": "\\u0000"}}', "$.failures[0].payload.text"),
        ('{"external_id": "x\\u0000"}', "$.failures[0].external_id"),
        ('{"payload": {"t": "\\udc00"}}', "$.failures[0].payload.t"),
        ('{"payload": {"\\u0000": 1}}', "$.failures[0].payload"),
    ],
)
def test_nul_or_lone_surrogate_in_bug_failures_is_a_400_naming_the_field(world, failure, where):
    body = '{"project": %d, "title": "t", "kind": "failed_prediction", "failures": [%s]}' % (world["ids"]["p"], failure)
    error = refused(world, "manager", "POST", "/api/bugs", body.encode())
    assert where in error["message"]


def test_nul_in_ground_truth_and_evaluations_is_a_400(world):
    refused(
        world, "manager", "POST", "/api/projects/{p}/ground-truth", b'[{"external_id": "it-\\u0000", "label": "pos"}]'
    )
    body = '{"project": %d, "model_version": "v9", "predictions": [{"external_id": "\\ud800", "label": "pos"}]}'
    refused(world, "manager", "POST", "/api/evaluations", (body % world["ids"]["p"]).encode())
    lines = b'{"external_id": "\\u0000", "label": "pos"}\n'
    path = "/api/evaluations?project={p}&model_version=v9"
    assert "NUL" in refused(world, "manager", "POST", path, lines, "application/x-ndjson")["message"]


def test_nul_in_query_string_or_form_is_a_400(world):
    before = snapshot()
    error_of(client(world["users"]["manager"]).get(f"/api/bugs?q=a%00b&project={world['ids']['p']}"), 400)
    error_of(
        client(world["users"]["manager"]).post(
            f"/bugs/{world['ids']['b']}/comments", "body=hi%00", content_type="application/x-www-form-urlencoded"
        ),
        400,
    )
    assert snapshot() == before


def test_good_json_still_goes_through(world):
    c = client(world["users"]["manager"])
    res = c.generic(
        "POST",
        ITEMS.format(**world["ids"]),
        json.dumps(
            [{"external_id": "fine", "payload": {"text": "café 😀 \\u0000 as text", "deep": json.loads(nested(60))}}]
        ),
        content_type=JSON,
    )
    assert res.status_code == 201, res.content
    res = client().post(
        "/api/auth/token",
        orjson.dumps({"username": world["users"]["manager"].username, "password": PASSWORD}),
        content_type=JSON,
    )
    assert res.status_code == 200 and res.json()["token"]
