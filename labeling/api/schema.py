from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object


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


class TokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Token <key>` (labeling.api.authentication) in the schema's security schemes."""

    target_class = "labeling.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
