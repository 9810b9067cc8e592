"""The OpenAPI schema class: component names for nested Input/Output serializers, and the rules the
server enforces that drf-spectacular leaves out (NUL-free and non-blank strings, refused unknown
fields, list lengths), so that what /api/schema says is valid is what the API accepts."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from rest_framework import serializers

NO_NUL = "^[^\\u0000]*$"
# A field that trims whitespace (Python's str.strip) and refuses blank needs one character that is
# whitespace neither to Python nor to ECMA regexes (ECMA's \s lacks \x1c-\x1f and \x85).
NOT_BLANK_NO_NUL = "^[^\\u0000]*[^\\s\\u0000\\u001c-\\u001f\\u0085][^\\u0000]*$"


class LoupeAutoSchema(AutoSchema):
    """Names components after their view when serializers are nested (TokenApi.Input -> TokenApiInput),
    so the one-view-per-operation style with nested Input/Output classes never collides."""

    def _get_serializer_name(self, serializer, direction, *args, **kwargs):
        name = super()._get_serializer_name(serializer, direction, *args, **kwargs)
        cls = serializer.child.__class__ if hasattr(serializer, "child") else serializer.__class__
        qual = cls.__qualname__
        if "." in qual and not getattr(getattr(cls, "Meta", None), "ref_name", None):
            prefix = qual.rsplit(".", 1)[0].replace(".", "")
            if not name.startswith(prefix):
                name = prefix + name
        return name

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        """An input serializer whose view refuses unknown keys (`rejects_unknown_fields = True`) is
        documented as such (additionalProperties: false)."""
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and getattr(serializer, "rejects_unknown_fields", False):
            schema["additionalProperties"] = False
        # drf-spectacular leaves out the length bounds of a nested `many=True` serializer.
        for name, field in getattr(force_instance(serializer), "fields", {}).items():
            prop = schema.get("properties", {}).get(name)
            if isinstance(field, serializers.ListSerializer) and prop and prop.get("type") == "array":
                if field.min_length is not None:
                    prop["minItems"] = field.min_length
                if field.max_length is not None:
                    prop["maxItems"] = field.max_length
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        """DRF's CharField refuses NUL characters (ProhibitNullCharactersValidator): say so."""
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and schema.get("type") == "string"
            and "pattern" not in schema
            and "enum" not in schema
            and "format" not in schema
        ):
            blank_refused = field.trim_whitespace and not field.allow_blank
            schema["pattern"] = NOT_BLANK_NO_NUL if blank_refused else NO_NUL
        return schema

    def _get_parameters(self):
        """common.api.base refuses a NUL in any query parameter: string parameters say so."""
        parameters = super()._get_parameters()
        for p in parameters:
            schema = p.get("schema", {})
            if (
                p["in"] == "query"
                and schema.get("type") == "string"
                and not {"pattern", "enum", "format"} & set(schema)
            ):
                schema["pattern"] = NO_NUL
        return parameters
