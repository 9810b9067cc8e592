"""Output shapes shared by the bug-queue endpoints (they read prefetched data: no queries per row)."""

from rest_framework import serializers

from bugqueue.models import Bug, BugStatus, Comment, FailureExample, Priority, Tag


class TagOutput(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["slug", "name", "description"]


class BugOutput(serializers.ModelSerializer):
    assignee = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    project = serializers.IntegerField(source="project_id")
    duplicate_of = serializers.IntegerField(source="duplicate_of_id", allow_null=True)

    class Meta:
        model = Bug
        fields = [
            "id",
            "project",
            "title",
            "kind",
            "status",
            "priority",
            "assignee",
            "tags",
            "fingerprint",
            "model_version",
            "occurrences",
            "first_seen",
            "last_seen",
            "regressed",
            "regressed_at",
            "reopened_at",
            "triaged_at",
            "resolved_at",
            "resolution",
            "resolution_note",
            "duplicate_of",
            "snoozed",
            "snooze_until",
            "snooze_until_occurrences",
            "snooze_items",
            "created_at",
            "updated_at",
        ]

    def get_assignee(self, obj) -> str | None:
        return obj.assignee.username if obj.assignee_id else None

    def get_tags(self, obj) -> list[str]:
        slugs = getattr(obj, "tag_slugs", None)
        if slugs is not None:
            return slugs
        return [t.slug for t in obj.tags.all()]


class FailureOutput(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id", allow_null=True)
    input = serializers.SerializerMethodField(help_text="The failing input: the reported payload, or the item's.")
    occurred_at = serializers.DateTimeField(
        read_only=True,
        help_text="When the failure happened: predicted_at when known, else when its ground truth arrived, "
        "else created_at (the filing time).",
    )

    class Meta:
        model = FailureExample
        fields = [
            "id",
            "item",
            "external_id",
            "input",
            "model_version",
            "predicted_label",
            "expected_label",
            "predicted_at",
            "occurred_at",
            "source",
            "label_change_seq",
            "created_at",
        ]

    def get_input(self, obj) -> dict | None:
        if obj.payload is not None:
            return obj.payload
        return obj.item.payload if obj.item_id and obj.item is not None else None


class EventOutput(serializers.Serializer):
    """One history row: who changed which field, from what, to what, when (and why)."""

    id = serializers.IntegerField()
    actor = serializers.SerializerMethodField()
    field = serializers.CharField()
    to = serializers.CharField(source="to_value")
    note = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_fields(self):
        fields = super().get_fields()
        ordered = {}
        for name, f in fields.items():
            ordered[name] = f
            if name == "field":
                ordered["from"] = serializers.CharField(source="from_value")
        return ordered

    def get_actor(self, obj) -> str | None:
        return obj.actor.username if obj.actor_id and obj.actor else None


class CommentOutput(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()

    class Meta:
        model = Comment
        fields = ["id", "author", "body", "created_at"]

    def get_author(self, obj) -> str | None:
        return obj.author.username if obj.author_id and obj.author else None


class ConfusionOutput(serializers.Serializer):
    model_version = serializers.CharField()
    predicted_label = serializers.CharField()
    expected_label = serializers.CharField(allow_null=True)
    n = serializers.IntegerField()


class SeriesPointOutput(serializers.Serializer):
    day = serializers.DateField()
    count = serializers.IntegerField()


class BugDetailOutput(BugOutput):
    """A bug (the fields of BugOutput) with its description, recent failures, history, comments and
    occurrences per day. Built by `bug_detail_data` from the `bug_detail` selector (no extra queries)."""

    description = serializers.CharField()
    reporter = serializers.CharField(allow_null=True)
    failure_count = serializers.IntegerField()
    failures_hidden = serializers.IntegerField(
        help_text="Failures left out of `failures` and `confusion` for you: their items may still be served "
        "to you for labeling (blind labeling; always 0 for reviewers and managers)."
    )
    failures_without_expected = serializers.IntegerField()
    failures = FailureOutput(many=True, help_text="The 50 most recent failures you may see.")
    confusion = ConfusionOutput(many=True, help_text="Failures you may see per (model version, predicted, expected).")
    occurrences_by_day = SeriesPointOutput(many=True)
    events = EventOutput(many=True)
    comments = CommentOutput(many=True)

    class Meta(BugOutput.Meta):
        fields = BugOutput.Meta.fields + [
            "description",
            "reporter",
            "failure_count",
            "failures_hidden",
            "failures_without_expected",
            "failures",
            "confusion",
            "occurrences_by_day",
            "events",
            "comments",
        ]


def bug_detail_data(detail: dict) -> dict:
    bug = detail["bug"]
    bug.tag_slugs = [t.slug for t in detail["tags"]]
    return {
        **BugOutput(bug).data,
        "description": bug.description,
        "reporter": bug.reporter.username if bug.reporter_id and bug.reporter else None,
        "failure_count": detail["failure_count"],
        "failures_hidden": detail["failures_hidden"],
        "failures_without_expected": detail["failures_without_expected"],
        "failures": FailureOutput(detail["failures"], many=True).data,
        "confusion": ConfusionOutput(detail["confusion"], many=True).data,
        "occurrences_by_day": detail["series"],
        "events": EventOutput(detail["events"], many=True).data,
        "comments": CommentOutput(detail["comments"], many=True).data,
    }


class FacetsOutput(serializers.Serializer):
    status = serializers.DictField(
        child=serializers.IntegerField(), help_text=f"Per status: {', '.join(BugStatus.values)}."
    )
    priority = serializers.DictField(
        child=serializers.IntegerField(), help_text=f"Per priority: {', '.join(Priority.values)}."
    )
    tag = serializers.DictField(child=serializers.IntegerField(), help_text="Per tag slug.")
