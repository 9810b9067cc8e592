"""DRF's JSON parser, reading through common.api.json_body: every endpoint that takes a JSON body
refuses the same things (too deep, NUL, lone surrogates, NaN) the same way, a 400 `parse_error`."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from common.api.json_body import json_loads


class JSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json_loads(stream.read())
        except ValueError as exc:
            raise ParseError(f"The body is not JSON Loupe accepts: {exc}")
