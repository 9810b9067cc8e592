from drf_spectacular.openapi import AutoSchema


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
