"""Content negotiation for endpoints that stream downloads: the view chooses the file format itself,
so DRF never answers 404/406 for a `format` it has no renderer for."""

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer


class FormatIsAQueryParameter(BaseContentNegotiation):
    """`?format=` selects a download format (json, jsonl, csv) in the view, not a DRF renderer;
    errors are always JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None
