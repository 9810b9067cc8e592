"""The OpenAPI schema and its docs page, with their errors in the one error shape."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common.api.base import JsonErrorsMixin


class SchemaApi(JsonErrorsMixin, SpectacularAPIView):
    """/api/schema: YAML, or JSON with ?format=json."""


class DocsApi(JsonErrorsMixin, SpectacularSwaggerView):
    """/api/docs: Swagger UI served from the installed sidecar package."""
