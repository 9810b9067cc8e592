"""The bug stream's API beyond the list (views_bugs.py): bulk actions and snooze. Thin: who may act
is checked by selectors, the changes are made by services (bugqueue.services.{bulk,snooze})."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from bugqueue.api.serializers import BugOutput
from bugqueue.api.views_bugs import CONFLICT, _reject_unknown
from bugqueue.selectors.bugs import access_bug
from bugqueue.selectors.search import MAX_QUERY_CHARS
from bugqueue.selectors.stream import bulk_targets
from bugqueue.services.bulk import ACTIONS, MAX_BULK, bugs_bulk_apply
from bugqueue.services.snooze import bug_snooze, bug_unsnooze
from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS
from labeling.selectors.access import REVIEW_ROLES, access_project


class BugBulkApi(ApiView):
    class Input(inputs.Input):
        bugs = serializers.ListField(
            child=serializers.IntegerField(**inputs.ID),
            required=False,
            max_length=MAX_BULK,
            help_text="The bugs' ids (or send query).",
        )
        query = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=MAX_QUERY_CHARS,
            help_text="A search (the `q` grammar of GET /api/bugs).",
        )
        project = serializers.IntegerField(required=False, help_text="Limits query to one project.", **inputs.ID)
        action = serializers.ChoiceField(choices=ACTIONS)
        value = serializers.JSONField(
            required=False,
            allow_null=True,
            help_text="assign: a username or null; priority: p0..p3; tag: {add: [slugs], remove: [slugs]}; "
            'resolve: "fixed" or "wont_fix" (or {resolution, note}); snooze: {until?, occurrences?, items?} '
            "({} snoozes until unsnoozed); unsnooze: nothing.",
        )
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)

    class Output(serializers.Serializer):
        action = serializers.CharField()
        matched = serializers.IntegerField(help_text="Bugs named by bugs or query.")
        changed = serializers.IntegerField()
        unchanged = serializers.IntegerField(help_text="Already as asked.")
        skipped = serializers.ListField(
            child=serializers.DictField(), help_text="[{id, reason}]: bugs the action does not apply to."
        )
        bugs = serializers.ListField(child=serializers.IntegerField(), help_text="The ids changed.")

    @extend_schema(
        request=Input,
        responses={200: Output, **ERRORS},
        operation_id="bugs_bulk",
        description="Apply one action to many bugs (at most 10,000) in one transaction: assign, priority, "
        "tag (add/remove, other tags stay), resolve (fixed or wont_fix; duplicates go through POST "
        "/api/bugs/merge), snooze, unsnooze. Name the bugs by id (`bugs`) or by a search (`query`, the `q` "
        "grammar of GET /api/bugs). Every change is written to each bug's history. Needs the reviewer or manager "
        "role in every bug's project (403 otherwise, nothing changed); unknown ids are a 404 naming them.",
    )
    def post(self, request):
        _reject_unknown(request.data, self.Input._declared_fields)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = None
        if values.get("project"):
            project = access_project(user=request.user, project_id=values["project"])
        ids = bulk_targets(
            user=request.user,
            bug_ids=values.get("bugs"),
            query=values.get("query"),
            project=project,
            limit=MAX_BULK,
        )
        result = bugs_bulk_apply(
            actor=request.user, bug_ids=ids, action=values["action"], value=values.get("value"), note=values["note"]
        )
        return Response(
            {
                "action": result.action,
                "matched": result.matched,
                "changed": len(result.changed),
                "unchanged": result.unchanged,
                "skipped": result.skipped,
                "bugs": result.changed,
            }
        )


class BugSnoozeApi(ApiView):
    class Input(inputs.Input):
        until = inputs.TimestampField(required=False, allow_null=True, help_text="Return at this time.")
        occurrences = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=1_000_000_000, help_text="Return after N more."
        )
        items = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            max_value=1_000_000_000,
            help_text="Return when new failures touch N more distinct items.",
        )
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)

    @extend_schema(
        request=Input,
        responses={200: BugOutput, **CONFLICT, **ERRORS},
        operation_id="bugs_snooze",
        description="Snooze an open bug (Sentry's ignore): it leaves the default stream (is:unresolved) and "
        "returns, with a bug.unsnoozed event, when any condition given is met: the date, N more occurrences, or "
        "N more distinct items among its new failures. No condition: until unsnoozed. Snoozing again replaces "
        "the condition; a closed bug answers 409. Needs the reviewer or manager role.",
    )
    def post(self, request, bug_id):
        bug = access_bug(user=request.user, bug_id=bug_id, roles=REVIEW_ROLES)
        _reject_unknown(request.data, self.Input._declared_fields)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        bug = bug_snooze(bug=bug, actor=request.user, **data.validated_data)
        return Response(BugOutput(bug).data)


class BugUnsnoozeApi(ApiView):
    class Input(inputs.Input):
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)

    @extend_schema(
        request=Input,
        responses={200: BugOutput, **ERRORS},
        operation_id="bugs_unsnooze",
        description="Return a snoozed bug to the stream now (no change for a bug that is not snoozed).",
    )
    def post(self, request, bug_id):
        bug = access_bug(user=request.user, bug_id=bug_id, roles=REVIEW_ROLES)
        _reject_unknown(request.data, self.Input._declared_fields)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        bug = bug_unsnooze(bug=bug, actor=request.user, **data.validated_data)
        return Response(BugOutput(bug).data)
