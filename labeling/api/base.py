"""The base of every Loupe API view: errors always render as JSON, and a request that carries a query
parameter the operation does not declare is refused with 400 naming it, instead of being ignored.

The declared parameters are the ones in the view method's `@extend_schema(parameters=[...])` and,
for a GET on a view with a `pagination_class`, that paginator's: the OpenAPI schema is built from the
same declarations, so what /api/schema lists is exactly what is accepted."""

from functools import lru_cache

from drf_spectacular.utils import OpenApiParameter
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from labeling.errors import ValidationFailed


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


@lru_cache(maxsize=None)
def _declared_query_params(view_class, method: str) -> frozenset[str]:
    handler = getattr(view_class, method.lower(), None)
    schema_class = getattr(handler, "kwargs", {}).get("schema") or api_settings.DEFAULT_SCHEMA_CLASS
    schema = schema_class()
    schema.method = method
    schema.view = _SchemaProbe(view_class)
    names = {
        p.name for p in schema.get_override_parameters()
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
    renderer_classes = [JSONRenderer]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles first
        self.check_query_params(request)

    def check_query_params(self, request):
        method = request.method.upper()
        if method == "OPTIONS" or method.lower() not in self.http_method_names or not hasattr(self, method.lower()):
            return  # OPTIONS describes the view; an unknown method answers 405
        if method == "HEAD":
            method = "GET"
        allowed = _declared_query_params(type(self), method)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            accepted = ", ".join(sorted(allowed)) if allowed else "none"
            raise ValidationFailed(
                f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
                f"(this endpoint accepts: {accepted}).",
                code="unknown_parameter",
                fields={name: ["Unknown query parameter."] for name in unknown},
            )
