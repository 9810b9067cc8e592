"""Bad input, every POST/PATCH endpoint of labeling and bugqueue: a 4xx in the one error shape, and
nothing written (every row of both apps, users and tokens compared before and after).

Each case is (id, actor, method, path, body, content type); a body that is bytes is sent as it is,
anything else as JSON. Paths name the world's objects: {p} project, {a} assignment, {i} item,
{b} bug, {d} dataset.
"""

import json

import pytest

from tests.input_world import client, error_of, input_world
from tests.labeling.factories import PASSWORD
from tests.rows import snapshot

JSON = "application/json"
NDJSON = "application/x-ndjson"
DEEP = b"[" * 100_000
BIG = 2**31  # one past PostgreSQL's integer


def nested(depth: int) -> str:
    """JSON text of objects nested `depth` deep (built as text: json.dumps itself recurses)."""
    return '{"a":' * depth + "1" + "}" * depth


def raw(text: str) -> bytes:
    return text.encode()


ITEM = {"external_id": "new-1", "payload": {"text": "hello"}}
PRED = {"model_version": "v1", "label": "pos"}
BUG = {"project": "{p}", "title": "Wrong answers", "kind": "failed_prediction"}


def with_pred(**pred):
    return [{**ITEM, "prediction": {**PRED, **pred}}]


def bug(**fields):
    return {**BUG, **fields}


def failure(**fields):
    return bug(failures=[{"payload": {"text": "x"}, "predicted_label": "pos", **fields}])


CASES = [
    # --- nesting -------------------------------------------------------------------------------
    ("deep-token", "anon", "post", "/api/auth/token", DEEP, JSON),
    ("deep-items", "manager", "post", "/api/projects/{p}/items", DEEP, JSON),
    ("deep-items-ndjson", "manager", "post", "/api/projects/{p}/items", DEEP, NDJSON),
    ("deep-submit", "annotator", "post", "/api/assignments/{a}/submit", DEEP, JSON),
    ("deep-patch-project", "manager", "patch", "/api/projects/{p}", DEEP, JSON),
    ("deep-bugs", "manager", "post", "/api/bugs", DEEP, JSON),
    ("deep-ground-truth", "manager", "post", "/api/projects/{p}/ground-truth", DEEP, JSON),
    ("deep-evaluations", "manager", "post", "/api/evaluations", DEEP, JSON),
    ("deep-queue-next", "annotator", "post", "/api/projects/{p}/queue/next", DEEP, JSON),
    (
        "deep-3000-item-payload",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id": "deep", "payload": %s}]' % nested(3000)),
        JSON,
    ),
    (
        "deep-3000-failure-payload",
        "manager",
        "post",
        "/api/bugs",
        raw('{"project": {p}, "title": "t", "kind": "user_report", "failures": [{"payload": %s}]}' % nested(3000)),
        JSON,
    ),
    ("deep-3000-patch-project", "manager", "patch", "/api/projects/{p}", raw('{"name": %s}' % nested(3000)), JSON),
    (
        "deep-200-item-payload",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id": "deep", "payload": %s}]' % nested(200)),
        JSON,
    ),
    # --- NUL and lone surrogates ---------------------------------------------------------------
    (
        "nul-payload-value",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id":"n1","payload":{"text":"a\\u0000b"}}]'),
        JSON,
    ),
    (
        "nul-payload-key",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id":"n1","payload":{"te\\u0000xt":"ab"}}]'),
        JSON,
    ),
    (
        "nul-external-id",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id":"n\\u00001","payload":{"text":"ab"}}]'),
        JSON,
    ),
    (
        "nul-external-id-ndjson",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('{"external_id":"n\\u00001","payload":{}}\n'),
        NDJSON,
    ),
    (
        "nul-model-version",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id":"n1","payload":{},"prediction":{"model_version":"v\\u0000","label":"pos"}}]'),
        JSON,
    ),
    (
        "nul-ground-truth-id",
        "manager",
        "post",
        "/api/projects/{p}/ground-truth",
        raw('[{"external_id":"it-\\u0000","label":"pos"}]'),
        JSON,
    ),
    (
        "nul-failure-payload",
        "manager",
        "post",
        "/api/bugs",
        raw('{"project":{p},"title":"t","kind":"failed_prediction","failures":[{"payload":{"text":"\\u0000"}}]}'),
        JSON,
    ),
    (
        "nul-failure-external-id",
        "manager",
        "post",
        "/api/bugs",
        raw('{"project":{p},"title":"t","kind":"failed_prediction","failures":[{"external_id":"x\\u0000"}]}'),
        JSON,
    ),
    (
        "nul-bug-title",
        "manager",
        "post",
        "/api/bugs",
        raw('{"project":{p},"title":"t\\u0000","kind":"user_report"}'),
        JSON,
    ),
    ("nul-comment", "manager", "post", "/api/bugs/{b}/comments", raw('{"body":"hi\\u0000"}'), JSON),
    ("nul-token-username", "anon", "post", "/api/auth/token", raw('{"username":"a\\u0000","password":"x"}'), JSON),
    (
        "nul-evaluation-external-id",
        "manager",
        "post",
        "/api/evaluations",
        raw('{"project":{p},"model_version":"v9","predictions":[{"external_id":"\\u0000","label":"pos"}]}'),
        JSON,
    ),
    ("nul-dataset-version-add", "manager", "post", "/api/datasets/{d}/versions", raw('{"add":["it-\\u00000"]}'), JSON),
    (
        "surrogate-payload-value",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id":"s1","payload":{"text":"\\ud800"}}]'),
        JSON,
    ),
    (
        "surrogate-payload-key",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id":"s1","payload":{"\\udfff":1}}]'),
        JSON,
    ),
    (
        "surrogate-external-id",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw('[{"external_id":"s\\ud83d","payload":{}}]'),
        JSON,
    ),
    (
        "surrogate-failure-payload",
        "manager",
        "post",
        "/api/bugs",
        raw('{"project":{p},"title":"t","kind":"failed_prediction","failures":[{"payload":{"t":"\\udc00"}}]}'),
        JSON,
    ),
    (
        "surrogate-ground-truth-id",
        "manager",
        "post",
        "/api/projects/{p}/ground-truth",
        raw('[{"external_id":"\\ud800","label":"pos"}]'),
        JSON,
    ),
    (
        "surrogate-evaluation-id",
        "manager",
        "post",
        "/api/evaluations",
        raw('{"project":{p},"model_version":"v9","predictions":[{"external_id":"\\ud800x","label":"pos"}]}'),
        JSON,
    ),
    (
        "surrogate-utf8-bytes",
        "manager",
        "post",
        "/api/projects/{p}/items",
        b'[{"external_id":"s1","payload":{"text":"\xed\xa0\x80"}}]',
        JSON,
    ),
    (
        "invalid-utf8",
        "manager",
        "post",
        "/api/projects/{p}/items",
        b'[{"external_id":"u1","payload":{"text":"\xff"}}]',
        JSON,
    ),
    # --- integers out of their column's range, negative numbers, floats as ints ---------------
    ("int-slo-target", "manager", "patch", "/api/projects/{p}", {"slo_target_seconds": BIG}, JSON),
    ("int-annotations-per-item-huge", "manager", "patch", "/api/projects/{p}", {"annotations_per_item": 10**30}, JSON),
    ("int-lease-negative", "manager", "patch", "/api/projects/{p}", {"lease_seconds": -5}, JSON),
    ("int-float-as-int", "manager", "patch", "/api/projects/{p}", {"annotations_per_item": 2.5}, JSON),
    (
        "int-quality-settings",
        "manager",
        "patch",
        "/api/projects/{p}/quality-settings",
        {"auto_run_after_disputed": 2**40},
        JSON,
    ),
    (
        "int-quality-settings-negative",
        "manager",
        "patch",
        "/api/projects/{p}/quality-settings",
        {"auto_run_after_disputed": -1},
        JSON,
    ),
    ("int-item-priority", "manager", "post", "/api/projects/{p}/items", [{**ITEM, "priority": BIG}], JSON),
    ("int-item-priority-float", "manager", "post", "/api/projects/{p}/items", [{**ITEM, "priority": 1.5}], JSON),
    ("int-item-priority-bigint", "manager", "post", "/api/projects/{p}/items", [{**ITEM, "priority": 10**20}], JSON),
    ("int-bug-project", "manager", "post", "/api/bugs", bug(project=2**63), JSON),
    ("int-bug-duplicate-of", "manager", "patch", "/api/bugs/{b}", {"status": "duplicate", "duplicate_of": 2**70}, JSON),
    (
        "int-resolve-duplicate-of",
        "manager",
        "post",
        "/api/bugs/{b}/resolve",
        {"resolution": "duplicate", "duplicate_of": 2**64},
        JSON,
    ),
    (
        "int-resolve-datasets",
        "manager",
        "post",
        "/api/bugs/{b}/resolve",
        {"resolution": "fixed", "datasets": [2**64]},
        JSON,
    ),
    (
        "int-resolve-mine-negative",
        "manager",
        "post",
        "/api/bugs/{b}/resolve",
        {"resolution": "fixed", "mine_similar": -1},
        JSON,
    ),
    ("int-queue-exclude", "annotator", "post", "/api/projects/{p}/queue/next", {"exclude": [2**63]}, JSON),
    ("int-datasets-project", "manager", "post", "/api/datasets", {"project": 2**64, "name": "d"}, JSON),
    (
        "int-evaluation-datasets",
        "manager",
        "post",
        "/api/evaluations",
        {
            "project": "{p}",
            "model_version": "v9",
            "predictions": [{"external_id": "it-0", "label": "pos"}],
            "datasets": [2**70],
        },
        JSON,
    ),
    ("int-path-submit", "annotator", "post", "/api/assignments/99999999999999999999/submit", {"label": "pos"}, JSON),
    ("int-path-bug-patch", "manager", "patch", "/api/bugs/99999999999999999999", {"priority": "p1"}, JSON),
    ("int-path-resolve", "manager", "post", "/api/items/99999999999999999999/resolve", {"label": "pos"}, JSON),
    ("int-path-project-patch", "manager", "patch", "/api/projects/99999999999999999999", {"name": "x"}, JSON),
    (
        "int-query-project",
        "manager",
        "post",
        "/api/evaluations?project=99999999999999999999&model_version=v9",
        b'{"external_id":"it-0","label":"pos"}\n',
        NDJSON,
    ),
    (
        "int-evaluation-project",
        "manager",
        "post",
        "/api/evaluations",
        {"project": 2**64, "model_version": "v9", "predictions": [{"external_id": "it-0", "label": "pos"}]},
        JSON,
    ),
    # --- NaN and Infinity ----------------------------------------------------------------------
    ("nan-literal", "manager", "patch", "/api/projects/{p}", raw('{"accept_threshold": NaN}'), JSON),
    ("nan-string-threshold", "manager", "patch", "/api/projects/{p}", {"accept_threshold": "NaN"}, JSON),
    ("inf-string-quantile", "manager", "patch", "/api/projects/{p}", {"slo_quantile": "Infinity"}, JSON),
    (
        "inf-literal-seconds",
        "annotator",
        "post",
        "/api/assignments/{a}/submit",
        raw('{"label":"pos","seconds_spent":Infinity}'),
        JSON,
    ),
    (
        "inf-overflow-seconds",
        "annotator",
        "post",
        "/api/assignments/{a}/submit",
        raw('{"label":"pos","seconds_spent":1e400}'),
        JSON,
    ),
    (
        "nan-string-seconds",
        "annotator",
        "post",
        "/api/assignments/{a}/submit",
        {"label": "pos", "seconds_spent": "nan"},
        JSON,
    ),
    (
        "nan-min-accuracy",
        "manager",
        "post",
        "/api/datasets",
        {"project": "{p}", "name": "d", "min_accuracy": "nan"},
        JSON,
    ),
    (
        "nan-probabilities",
        "manager",
        "post",
        "/api/projects/{p}/items",
        raw(
            '[{"external_id":"p1","payload":{},"prediction":{"model_version":"v1","label":"pos",'
            '"probabilities":{"pos":NaN,"neg":0,"neu":0}}}]'
        ),
        JSON,
    ),
    # --- timestamps outside 1970..2100 ---------------------------------------------------------
    (
        "ts-predicted-at-bc",
        "manager",
        "post",
        "/api/projects/{p}/items",
        with_pred(predicted_at="0001-01-01T00:00:00+12:00"),
        JSON,
    ),
    (
        "ts-predicted-at-1969",
        "manager",
        "post",
        "/api/projects/{p}/items",
        with_pred(predicted_at="1969-12-31T23:59:59Z"),
        JSON,
    ),
    (
        "ts-predicted-at-2100",
        "manager",
        "post",
        "/api/projects/{p}/items",
        with_pred(predicted_at="2100-01-01T00:00:01Z"),
        JSON,
    ),
    (
        "ts-predicted-at-9999",
        "manager",
        "post",
        "/api/projects/{p}/items",
        with_pred(predicted_at="9999-12-31T23:59:59-12:00"),
        JSON,
    ),
    ("ts-predicted-at-number", "manager", "post", "/api/projects/{p}/items", with_pred(predicted_at=1e20), JSON),
    (
        "ts-observed-at-year-1",
        "manager",
        "post",
        "/api/projects/{p}/ground-truth",
        [{"external_id": "it-0", "label": "neg", "observed_at": "0001-01-01T00:00:00Z"}],
        JSON,
    ),
    (
        "ts-observed-at-1900",
        "manager",
        "post",
        "/api/projects/{p}/ground-truth",
        [{"external_id": "it-0", "label": "neg", "observed_at": "1900-06-01"}],
        JSON,
    ),
    (
        "ts-failure-predicted-at-bc",
        "manager",
        "post",
        "/api/bugs",
        failure(predicted_at="0001-01-01T00:00:00+12:00"),
        JSON,
    ),
    (
        "ts-failure-predicted-at-9999",
        "manager",
        "post",
        "/api/bugs",
        failure(predicted_at="9999-12-31T23:59:59-12:00"),
        JSON,
    ),
    (
        "ts-annotations-since",
        "manager",
        "get",
        "/api/projects/{p}/annotations?since=0001-01-01T00:00:00%2B12:00",
        None,
        None,
    ),
    ("ts-feedback-since", "manager", "get", "/api/projects/{p}/feedback-delay?since=0001-01-01", None, None),
    (
        "ts-feedback-until",
        "manager",
        "get",
        "/api/projects/{p}/feedback-delay?until=9999-12-31T23:59:59-12:00",
        None,
        None,
    ),
    ("ts-triage-week", "manager", "get", "/api/triage?project={p}&week=9999-W52", None, None),
    # --- wrong types, missing fields, empty bodies ---------------------------------------------
    ("type-labels-string", "manager", "post", "/api/projects", {"name": "p", "labels": "pos"}, JSON),
    ("missing-labels", "manager", "post", "/api/projects", {"name": "p"}, JSON),
    (
        "type-label-key-object",
        "manager",
        "post",
        "/api/projects",
        {"name": "p", "labels": [{"key": {"a": 1}, "name": "A"}]},
        JSON,
    ),
    ("type-submit-label-list", "annotator", "post", "/api/assignments/{a}/submit", {"label": ["pos"]}, JSON),
    ("unknown-submit-label", "annotator", "post", "/api/assignments/{a}/submit", {"label": "\u202epos"}, JSON),
    (
        "type-bug-settings-bool",
        "manager",
        "patch",
        "/api/projects/{p}/bug-settings",
        {"auto_file_failed_predictions": "maybe"},
        JSON,
    ),
    (
        "type-users-is-staff",
        "staff",
        "post",
        "/api/users",
        {"username": "newbie", "password": "x" * 12, "is_staff": "yes please"},
        JSON,
    ),
    ("type-failures-object", "manager", "post", "/api/bugs", bug(failures={"payload": {}}), JSON),
    ("type-ground-truth-rows", "manager", "post", "/api/projects/{p}/ground-truth", [1, 2], JSON),
    ("type-items-object", "manager", "post", "/api/projects/{p}/items", {"external_id": "x", "payload": {}}, JSON),
    ("type-dataset-add", "manager", "post", "/api/datasets/{d}/versions", {"add": "it-0"}, JSON),
    ("type-resolve-label", "manager", "post", "/api/items/{i}/resolve", {"label": 7}, JSON),
    ("empty-submit", "annotator", "post", "/api/assignments/{a}/submit", b"", JSON),
    ("empty-bugs", "manager", "post", "/api/bugs", b"", JSON),
    ("empty-items", "manager", "post", "/api/projects/{p}/items", b"", JSON),
    ("empty-ground-truth", "manager", "post", "/api/projects/{p}/ground-truth", b"", JSON),
    ("empty-token", "anon", "post", "/api/auth/token", b"", JSON),
    ("empty-projects", "manager", "post", "/api/projects", b"", JSON),
    ("empty-array-items", "manager", "post", "/api/projects/{p}/items", [], JSON),
    # --- arrays where objects are expected -----------------------------------------------------
    ("array-submit", "annotator", "post", "/api/assignments/{a}/submit", [], JSON),
    ("array-patch-project", "manager", "patch", "/api/projects/{p}", [{"name": "x"}], JSON),
    # POST /api/bugs takes a list of reports (a batch, all or nothing): bad batches change nothing.
    ("batch-bugs-one-bad", "manager", "post", "/api/bugs", [BUG, {**BUG, "kind": "nonsense"}], JSON),
    ("batch-bugs-empty", "manager", "post", "/api/bugs", [], JSON),
    ("batch-bugs-not-objects", "manager", "post", "/api/bugs", [BUG, "x"], JSON),
    ("array-quality-settings", "manager", "patch", "/api/projects/{p}/quality-settings", [], JSON),
    ("array-evaluations", "manager", "post", "/api/evaluations", [], JSON),
    ("array-members", "manager", "post", "/api/projects/{p}/members", [{"username": "x", "role": "annotator"}], JSON),
    ("array-exports", "manager", "post", "/api/projects/{p}/exports", [], JSON),
    ("string-body-patch", "manager", "patch", "/api/projects/{p}", "name", JSON),
    # --- wrong content types, invalid JSON -----------------------------------------------------
    ("ctype-items-text", "manager", "post", "/api/projects/{p}/items", raw(json.dumps([ITEM])), "text/plain"),
    ("ctype-submit-text", "annotator", "post", "/api/assignments/{a}/submit", raw('{"label":"pos"}'), "text/plain"),
    ("ctype-patch-xml", "manager", "patch", "/api/projects/{p}", b"<name>x</name>", "application/xml"),
    (
        "ctype-bugs-form",
        "manager",
        "post",
        "/api/bugs",
        b"title=t&kind=user_report",
        "application/x-www-form-urlencoded",
    ),
    ("invalid-json-items", "manager", "post", "/api/projects/{p}/items", b'[{"external_id": "x",', JSON),
    ("invalid-json-submit", "annotator", "post", "/api/assignments/{a}/submit", b'{"label": pos}', JSON),
    ("invalid-json-trailing-comma", "manager", "patch", "/api/projects/{p}", b'{"name": "x",}', JSON),
    ("invalid-json-two-values", "manager", "patch", "/api/projects/{p}", b'{"name": "x"} {"name": "y"}', JSON),
    (
        "invalid-ndjson-line",
        "manager",
        "post",
        "/api/projects/{p}/items",
        b'{"external_id":"a","payload":{}}\n{oops\n',
        NDJSON,
    ),
    ("invalid-json-single-quotes", "manager", "post", "/api/bugs", b"{'title': 't'}", JSON),
    (
        "duplicate-keys-last-bad",
        "manager",
        "patch",
        "/api/projects/{p}",
        b'{"slo_target_seconds": 60, "slo_target_seconds": 2147483648}',
        JSON,
    ),
    # --- huge strings ---------------------------------------------------------------------------
    ("huge-project-name", "manager", "patch", "/api/projects/{p}", {"name": "x" * 300}, JSON),
    ("huge-project-description", "manager", "patch", "/api/projects/{p}", {"description": "x" * 2_000_000}, JSON),
    ("huge-token-body", "anon", "post", "/api/auth/token", {"username": "x" * 2_000_000, "password": "x"}, JSON),
    ("huge-bug-title", "manager", "post", "/api/bugs", bug(title="x" * 10_000), JSON),
    ("huge-comment", "manager", "post", "/api/bugs/{b}/comments", {"body": "x" * 30_000}, JSON),
    (
        "huge-external-id",
        "manager",
        "post",
        "/api/projects/{p}/items",
        [{"external_id": "x" * 256, "payload": {}}],
        JSON,
    ),
    (
        "huge-guideline",
        "manager",
        "post",
        "/api/projects",
        {"name": "p", "labels": [{"key": "a", "name": "A", "guideline": "g" * 100_000}]},
        JSON,
    ),
    # --- unknown fields -------------------------------------------------------------------------
    ("unknown-patch-project", "manager", "patch", "/api/projects/{p}", {"name": "ok", "colour": "red"}, JSON),
    (
        "unknown-quality-settings",
        "manager",
        "patch",
        "/api/projects/{p}/quality-settings",
        {"auto_run_after_disputed": 5, "auto_run": 1},
        JSON,
    ),
    (
        "unknown-bug-settings",
        "manager",
        "patch",
        "/api/projects/{p}/bug-settings",
        {"auto_file_failed_predictions": True, "digest": False},
        JSON,
    ),
    ("unknown-submit", "annotator", "post", "/api/assignments/{a}/submit", {"label": "pos", "confidence": 0.2}, JSON),
    ("unknown-item-field", "manager", "post", "/api/projects/{p}/items", [{**ITEM, "colour": "red"}], JSON),
    (
        "unknown-label-field",
        "manager",
        "post",
        "/api/projects",
        {"name": "p", "labels": [{"key": "a", "name": "A", "color": "red"}]},
        JSON,
    ),
    ("unknown-dataset-field", "manager", "post", "/api/datasets", {"project": "{p}", "name": "d", "owner": "me"}, JSON),
]


@pytest.fixture
def world(transactional_db):
    return input_world()


def fill(text: str, ids: dict) -> str:
    for key, value in ids.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def encode(body, ids):
    if body is None or isinstance(body, bytes):
        return (
            body
            if body is None
            else fill(body.decode("utf-8", "surrogateescape"), ids).encode("utf-8", "surrogateescape")
        )
    text = json.dumps(body)
    return fill(text, ids).replace(f'"{ids["p"]}"', str(ids["p"])).encode()


def send(world, actor, method, path, body, content_type):
    c = client(world["users"][actor])
    path = fill(path, world["ids"])
    if method == "get":
        return c.get(path)
    return c.generic(method.upper(), path, encode(body, world["ids"]) or b"", content_type=content_type)


def assert_error_shape(res):
    error_of(res, res.status_code)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_4xx_in_the_error_shape_and_writes_nothing(world, case):
    _id, actor, method, path, body, content_type = case
    before = snapshot()
    res = send(world, actor, method, path, body, content_type)
    assert res.status_code < 500, f"5xx: {res.status_code} {res.content[:300]!r}"
    assert res.status_code >= 400, f"accepted: {res.status_code} {res.content[:300]!r}"
    assert_error_shape(res)
    assert snapshot() == before, "written"


def test_the_cases_are_many_and_distinct():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))
    endpoints = {(c[2], c[3].split("?")[0]) for c in CASES}
    assert len(CASES) >= 60 and len(endpoints) >= 20, (len(CASES), len(endpoints))


def test_the_world_is_sound(world):
    """The bodies above are bad, not the world: the same endpoints accept good bodies."""
    ok = [
        ("manager", "patch", "/api/projects/{p}", {"slo_target_seconds": 3600}, JSON),
        ("annotator", "post", "/api/assignments/{a}/submit", {"label": "pos", "seconds_spent": 2.5}, JSON),
        ("manager", "post", "/api/projects/{p}/items", with_pred(predicted_at="2026-02-01T00:00:00Z"), JSON),
        ("manager", "post", "/api/projects/{p}/ground-truth", [{"external_id": "it-1", "label": "neg"}], JSON),
        ("manager", "post", "/api/bugs", failure(predicted_at="2026-02-01T00:00:00+12:00"), JSON),
        (
            "anon",
            "post",
            "/api/auth/token",
            {"username": world["users"]["manager"].username, "password": PASSWORD},
            JSON,
        ),
    ]
    for actor, method, path, body, ctype in ok:
        res = send(world, actor, method, path, body, ctype)
        assert res.status_code in (200, 201), (path, res.status_code, res.content[:300])
