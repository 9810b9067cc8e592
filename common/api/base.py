"""The base of every Loupe API view. It holds requests to what /api/schema documents, once for all
endpoints: errors always render as JSON; a body is JSON (415 otherwise) whose values have the JSON
types of the documented input serializer; a query parameter the operation does not declare is a 400
naming it (never silently ignored), and so is a NUL in any query parameter.

The declared parameters are the ones in the view method's `@extend_schema(parameters=[...])` and,
for a GET on a view with a `pagination_class`, that paginator's. The OpenAPI schema is built from the
same declarations, so what /api/schema lists is exactly what is accepted."""

from functools import cache

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from common.errors import ValidationFailed


class JsonErrorsMixin:
    """An error response is JSON whatever renderer the request negotiated (YAML for the schema view,
    HTML for the docs page)."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400 and isinstance(getattr(response, "data", None), dict):
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
            response.renderer_context = self.get_renderer_context()
        return response


def _method_schema(view_class, method: str):
    handler = getattr(view_class, method.lower(), None)
    schema_class = getattr(handler, "kwargs", {}).get("schema") or api_settings.DEFAULT_SCHEMA_CLASS
    schema = schema_class()
    schema.method = method
    schema.view = _SchemaProbe(view_class)
    return schema


@cache
def _declared_body(view_class, method: str):
    """The input serializer the schema documents for this method's JSON body, if any."""
    declared = _method_schema(view_class, method).get_request_serializer()
    if isinstance(declared, type) and issubclass(declared, serializers.BaseSerializer):
        return declared()
    return declared if isinstance(declared, serializers.BaseSerializer) else None


# DRF converts some JSON values on input (0 to false, 3 to "3", false to 0.0); the schema says
# boolean, string, number. The API holds clients to the schema: a value of another JSON type is a 400.
def _type_errors(field, value):
    if value is None:
        return None  # null is the field's own rule (allow_null)
    if isinstance(field, serializers.ListSerializer):
        if not isinstance(value, list):
            return ["Must be a list."]
        errors = {str(i): e for i, item in enumerate(value) if (e := _type_errors(field.child, item))}
        return errors or None
    if isinstance(field, serializers.Serializer):
        if not isinstance(value, dict):
            return ["Must be an object."]
        errors = {
            name: e
            for name, f in field.fields.items()
            if not f.read_only and name in value and (e := _type_errors(f, value[name]))
        }
        return errors or None
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return ["Must be a list."]
        errors = {str(i): e for i, item in enumerate(value) if (e := _type_errors(field.child, item))}
        return errors or None
    if isinstance(field, serializers.JSONField):
        return None
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else ["Must be true or false."]
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else ["Must be an integer."]
    if isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else ["Must be a number."]
    if isinstance(
        field, (serializers.CharField, serializers.ChoiceField, serializers.DateTimeField, serializers.DateField)
    ):
        return None if isinstance(value, str) else ["Must be a string."]
    return None


@cache
def _declared_query_params(view_class, method: str) -> frozenset[str]:
    schema = _method_schema(view_class, method)
    names = {
        p.name
        for p in schema.get_override_parameters()
        if isinstance(p, OpenApiParameter) and p.location == OpenApiParameter.QUERY
    }
    pagination_class = getattr(view_class, "pagination_class", None)
    if method == "GET" and pagination_class is not None:
        names |= {p["name"] for p in pagination_class().get_schema_operation_parameters(None)}
    return frozenset(names)


class _SchemaProbe:
    """The little of a view that extend_schema reads to tell whether an override applies to a method
    (API versions are not used here)."""

    request = None
    kwargs: dict = {}

    def __init__(self, view_class):
        self.view_class = view_class

    def determine_version(self, request, *args, **kwargs):
        return None, None


class ApiView(JsonErrorsMixin, APIView):
    # The API speaks JSON (batch endpoints also read JSON Lines from the raw body themselves): a form
    # or multipart body is a 415, and the schema documents only what is accepted. The JSON parser is
    # the one configured in REST_FRAMEWORK (DEFAULT_PARSER_CLASSES), whatever class that is.
    renderer_classes = [JSONRenderer]
    parser_classes = [p for p in api_settings.DEFAULT_PARSER_CLASSES if p.media_type == "application/json"] or [
        JSONParser
    ]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles first
        self.check_query_params(request)
        self.check_body_types(request)

    def check_body_types(self, request):
        """A JSON object body holds the JSON types its documented input serializer declares."""
        if request.method in ("GET", "HEAD", "OPTIONS", "DELETE") or not hasattr(self, request.method.lower()):
            return
        declared = _declared_body(type(self), request.method.upper())
        if declared is None or not (request.content_type or "").startswith("application/json"):
            return
        data = request.data
        if not isinstance(data, dict):
            return  # the serializer answers "expected an object"
        errors = _type_errors(declared, data)
        if errors:
            from common.api.errors import _first_message

            raise ValidationFailed(_first_message(errors), fields=errors)

    def check_query_params(self, request):
        method = request.method.upper()
        if method == "OPTIONS" or method.lower() not in self.http_method_names or not hasattr(self, method.lower()):
            return  # OPTIONS describes the view; an unknown method answers 405
        if method == "HEAD":
            method = "GET"
        allowed = _declared_query_params(type(self), method)
        nul = sorted(k for k, values in request.query_params.lists() if any("\x00" in v for v in [k, *values]))
        if nul:
            raise ValidationFailed(
                "A query parameter may not contain a NUL character.",
                fields={k.replace("\x00", "\\x00"): ["Contains a NUL character."] for k in nul},
            )
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            accepted = ", ".join(sorted(allowed)) if allowed else "none"
            raise ValidationFailed(
                f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
                f"(this endpoint accepts: {accepted}).",
                code="unknown_parameter",
                fields={name: ["Unknown query parameter."] for name in unknown},
            )
