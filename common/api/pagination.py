"""Pagination styles of the API. A view that pages sets `pagination_class`: the OpenAPI schema then
shows its answer as the page object ({next, previous, results}) and lists its query parameters,
and common.api.base accepts those parameters. A page size that is not an integer from 1 to the
maximum is a 400, not silently the default."""

from rest_framework.pagination import CursorPagination, PageNumberPagination

from common.errors import ValidationFailed


class StrictPageSizeMixin:
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationFailed(
                f"{self.page_size_query_param} must be an integer from 1 to {self.max_page_size}.",
                fields={self.page_size_query_param: [f"An integer from 1 to {self.max_page_size}."]},
            )
        return size

    def get_paginated_response_schema(self, schema):
        # DRF's own description leaves the links optional; every key is always there (null at an end).
        body = super().get_paginated_response_schema(schema)
        body["required"] = list(body["properties"])
        return body

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for p in parameters:
            if p["name"] == self.page_size_query_param:
                p["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters


class DefaultPagination(StrictPageSizeMixin, PageNumberPagination):
    def get_page_number(self, request, paginator):
        values = request.query_params.getlist(self.page_query_param)
        if not values:
            return 1
        raw = values[-1]
        if len(values) > 1 or not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise ValidationFailed(
                f"{self.page_query_param} must be one integer from 1.",
                fields={self.page_query_param: ["An integer from 1."]},
            )
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for p in parameters:
            if p["name"] == self.page_query_param:
                p["schema"] = {"type": "integer", "minimum": 1}
        return parameters


class IdCursorPagination(StrictPageSizeMixin, CursorPagination):
    """Stable keyset pagination by primary key: cost does not grow with the page number."""

    ordering = "id"


class ItemCursorPagination(IdCursorPagination):
    """Keyset pagination by item within one parent (a run's results): walks the (run, item) index."""

    ordering = "item_id"
