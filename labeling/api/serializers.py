"""Output shapes shared by several of labeling's endpoints."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import Item, ItemStatus, LabelClass, Project


class LabelOutput(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["key", "name", "guideline", "hotkey", "retired_at"]  # retired: kept on rows, not offered


class ProjectOutput(serializers.ModelSerializer):
    labels = LabelOutput(many=True, read_only=True)
    role = serializers.SerializerMethodField()
    slice_fields = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Payload keys that define slices."
    )

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "description",
            "labels",
            "annotations_per_item",
            "max_annotations_per_item",
            "lease_seconds",
            "queue_order",
            "accept_threshold",
            "accept_mode",
            "max_accept_error",
            "audit_rate",
            "slo_quantile",
            "slo_target_seconds",
            "slice_fields",
            "created_at",
            "updated_at",
            "role",
        ]

    def get_role(self, obj) -> str | None:
        return getattr(obj, "user_role", None)


class ItemOutput(serializers.ModelSerializer):
    # A disputed item waiting for the one more annotation a quality run asked for is shown as the open
    # item it becomes when an annotator reaches it (labeling.models.ReopenRequest; item_list
    # annotates `reopen_requested`).
    status = serializers.SerializerMethodField()
    required_annotations = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = [
            "id",
            "external_id",
            "payload",
            "priority",
            "status",
            "required_annotations",
            "annotation_count",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=ItemStatus.choices))
    def get_status(self, obj) -> str:
        return ItemStatus.OPEN if getattr(obj, "reopen_requested", False) else obj.status

    def get_required_annotations(self, obj) -> int:
        return obj.required_annotations + (1 if getattr(obj, "reopen_requested", False) else 0)
