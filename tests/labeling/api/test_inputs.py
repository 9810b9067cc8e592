"""Request bodies say what is stored or get a 400 naming the field (common.api.inputs): every body
serializer rejects unknown fields, bounds its integers to their columns and refuses NaN."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import serializers

from common.api import inputs
from labeling.models import Project
from tests.input_world import client, error_of, input_world
from tests.rows import snapshot

QUERY_PARAMETER_SERIALIZERS = {"LabelHistoryApi.Input"}  # GET parameters, not bodies
BIGINT = (-(2**63), 2**63 - 1)


def api_views():
    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns)
            elif isinstance(p, URLPattern) and hasattr(p.callback, "cls"):
                yield p.callback.cls

    return {cls for cls in walk(get_resolver().url_patterns) if cls.__module__.split(".")[1] == "api"}


def request_serializers():
    found = []
    for view in sorted(api_views(), key=lambda v: v.__qualname__):
        for name, value in vars(view).items():
            if isinstance(value, type) and issubclass(value, serializers.Serializer) and name.endswith("Input"):
                found.append(value)
    return found


def fields_of(serializer_class):
    """Every field of a serializer, nested serializers and list items included."""
    stack = list(serializer_class().fields.values())
    while stack:
        field = stack.pop()
        yield field
        if isinstance(field, serializers.ListSerializer):
            stack.extend(field.child.fields.values())
        elif isinstance(field, serializers.Serializer):
            stack.extend(field.fields.values())
        elif isinstance(field, serializers.ListField):
            stack.append(field.child)


def test_every_request_body_serializer_is_an_input():
    found = request_serializers()
    assert len(found) >= 20, [s.__qualname__ for s in found]
    plain = [
        s.__qualname__
        for s in found
        if s.__qualname__ not in QUERY_PARAMETER_SERIALIZERS and not issubclass(s, inputs.Input)
    ]
    assert plain == [], f"request bodies must be read by common.api.inputs.Input: {plain}"
    for s in found:
        for field in fields_of(s):
            if isinstance(field, serializers.Serializer) and not isinstance(field, serializers.ListSerializer):
                assert isinstance(field, inputs.Input), f"{s.__qualname__}.{field.field_name} is a plain serializer"


def test_every_integer_of_every_request_serializer_fits_a_column():
    for s in request_serializers():
        for field in fields_of(s):
            if isinstance(field, serializers.IntegerField):
                name = f"{s.__qualname__}.{field.field_name or field.parent.field_name}"
                assert field.min_value is not None and field.max_value is not None, f"{name} is unbounded"
                assert BIGINT[0] <= field.min_value <= field.max_value <= BIGINT[1], name
            if isinstance(field, serializers.FloatField):
                with pytest.raises(serializers.ValidationError):
                    field.run_validation("NaN")


def test_a_bound_is_added_only_where_none_was_given():
    class Body(inputs.Input):
        free = serializers.IntegerField()
        capped = serializers.IntegerField(min_value=1, max_value=10)
        ids = serializers.ListField(child=serializers.IntegerField(**inputs.ID))

    fields = Body().fields
    assert (fields["free"].min_value, fields["free"].max_value) == inputs.INT32
    assert (fields["capped"].min_value, fields["capped"].max_value) == (1, 10)
    assert (fields["ids"].child.min_value, fields["ids"].child.max_value) == (1, 2**63 - 1)
    body = Body(data={"free": 2**31, "capped": 3, "ids": [2**63], "extra": 1})
    assert not body.is_valid()
    assert set(body.errors) == {"free", "ids", "extra"}


@pytest.fixture
def world(db):
    return input_world()


def refused(world, actor, method, path, body, status=400) -> dict:
    before = snapshot()
    res = client(world["users"][actor]).generic(
        method, path.format(**world["ids"]), body, content_type="application/json"
    )
    error = error_of(res, status)
    assert snapshot() == before, "a refused request wrote"
    return error


def test_slo_target_beyond_the_column_is_a_400_naming_it(world):
    error = refused(world, "manager", "PATCH", "/api/projects/{p}", '{"slo_target_seconds": 2147483648}')
    assert list(error["fields"]) == ["slo_target_seconds"] and error["code"] == "invalid"
    assert Project.objects.get(pk=world["ids"]["p"]).slo_target_seconds == 7 * 86400


@pytest.mark.parametrize(
    "actor,method,path,body,field",
    [
        ("annotator", "POST", "/api/projects/{p}/queue/next", '{"exclude": [9223372036854775808]}', "exclude"),
        ("manager", "PATCH", "/api/projects/{p}", '{"slo_target_seconds": 10000000000}', "slo_target_seconds"),
        (
            "manager",
            "POST",
            "/api/bugs",
            '{"project": 9223372036854775808, "title": "t", "kind": "user_report"}',
            "project",
        ),
        (
            "manager",
            "POST",
            "/api/bugs/{b}/resolve",
            '{"resolution": "fixed", "datasets": [18446744073709551616]}',
            "datasets",
        ),
        ("manager", "POST", "/api/datasets", '{"project": 18446744073709551616, "name": "d"}', "project"),
        (
            "manager",
            "POST",
            "/api/evaluations",
            '{"project": {p}, "model_version": "v9", "predictions": [], "datasets": [1180591620717411303424]}',
            "datasets",
        ),
    ],
)
def test_numbers_out_of_range_are_a_400_naming_the_field(world, actor, method, path, body, field):
    body = body.replace("{p}", str(world["ids"]["p"]))
    assert field in refused(world, actor, method, path, body)["fields"]


@pytest.mark.parametrize(
    "method,path,body,unknown",
    [
        ("PATCH", "/api/projects/{p}/quality-settings", '{"auto_run_after_disputed": 5, "auto_run": 1}', "auto_run"),
        (
            "PATCH",
            "/api/projects/{p}/bug-settings",
            '{"auto_file_failed_predictions": true, "digest": false}',
            "digest",
        ),
        ("PATCH", "/api/projects/{p}", '{"name": "ok", "colour": "red"}', "colour"),
        ("POST", "/api/datasets", '{"project": {p}, "name": "d", "owner": "me"}', "owner"),
        (
            "POST",
            "/api/projects",
            '{"name": "p", "labels": [{"key": "a", "name": "A", "color": "red"}, {"key": "b", "name": "B"}]}',
            "labels",
        ),
        ("POST", "/api/projects/{p}/members", '{"username": "x", "role": "annotator", "admin": true}', "admin"),
    ],
)
def test_unknown_fields_are_a_400_naming_them(world, method, path, body, unknown):
    error = refused(world, "manager", method, path, body.replace("{p}", str(world["ids"]["p"])))
    assert unknown in error["fields"]


def test_unknown_field_on_submit_is_a_400_and_no_annotation(world):
    error = refused(world, "annotator", "POST", "/api/assignments/{a}/submit", '{"label": "pos", "confidence": 0.2}')
    assert error["fields"] == {"confidence": ["Unknown field."]}


def test_a_project_id_no_column_holds_is_a_404(world):
    # refused() checks the status, the error shape and that no row changed.
    error = refused(world, "manager", "PATCH", "/api/projects/99999999999999999999", '{"name": "x"}', status=404)
    assert error["code"] == "not_found"
    error = refused(world, "manager", "GET", "/api/me/stats?project=99999999999999999999", None, status=404)
    assert error["code"] == "not_found"
