from rest_framework.pagination import CursorPagination, PageNumberPagination


class DefaultPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class IdCursorPagination(CursorPagination):
    """Stable keyset pagination by primary key: cost does not grow with the page number."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ItemCursorPagination(IdCursorPagination):
    """Keyset pagination by item within one parent (a run's results): walks the (run, item) index."""

    ordering = "item_id"
