"""Loupe's token authentication in the OpenAPI schema's security schemes. Registered by importing
this module (LabelingConfig.ready), as drf-spectacular extensions are."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class TokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Token <key>` (labeling.api.authentication) in the schema's security schemes."""

    target_class = "labeling.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
