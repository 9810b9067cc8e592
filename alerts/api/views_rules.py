"""Alert rules, alerts and on call over the API: rules (managers write, members read) with their
action rate, mute / unmute; alerts listed, acknowledged, snoozed; the on-call rotation. Thin:
permission-checked reads through selectors, writes through services."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from alerts.models import AlertStatus
from alerts.selectors.alerts import access_alert, alert_list
from alerts.selectors.rules import DEFAULT_WEEKS, access_rule, rule_action_stats, rule_list
from alerts.services.alerts import alert_acknowledge, alert_snooze
from alerts.services.oncall import on_call_summary, rotation_set
from alerts.services.routing import acknowledge_url
from alerts.services.rules import PRIORITIES, rule_create, rule_delete, rule_mute, rule_unmute, rule_update
from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.errors import ValidationFailed
from common.events import EVENT_TYPES
from labeling.selectors.access import MANAGER_ROLES, access_project

CONFLICT = {409: ErrorSerializer}


class ConditionsInput(inputs.Input):
    kind = serializers.CharField(required=False, allow_blank=True, max_length=128)
    tag = serializers.CharField(required=False, allow_blank=True, max_length=128)
    priority_max = serializers.ChoiceField(choices=PRIORITIES, required=False, allow_blank=True)
    model_version = serializers.CharField(required=False, allow_blank=True, max_length=128)
    min_occurrences = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1_000_000)
    window_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10080)


class RuleInput(inputs.Input):
    name = serializers.CharField(max_length=100)
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=sorted(EVENT_TYPES)), min_length=1)
    conditions = ConditionsInput(required=False)
    channels = serializers.ListField(child=serializers.IntegerField(**inputs.ID), required=False)
    to_on_call = serializers.BooleanField(required=False)
    digest_minutes = serializers.IntegerField(required=False, min_value=0, max_value=10080)
    adaptive = serializers.BooleanField(required=False)
    action_floor = serializers.FloatField(required=False, min_value=0, max_value=1)
    enabled = serializers.BooleanField(required=False)
    muted_until = inputs.TimestampField(required=False, allow_null=True)


class RulePatchInput(RuleInput):
    def get_fields(self):
        fields = super().get_fields()
        for f in fields.values():
            f.required = False
        return fields


class StatsGroup(serializers.Serializer):
    alerts = serializers.IntegerField()
    acted = serializers.IntegerField()
    action_rate = serializers.FloatField()


class RuleOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    name = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    conditions = serializers.DictField()
    channels = serializers.SerializerMethodField()
    to_on_call = serializers.BooleanField()
    digest_minutes = serializers.IntegerField()
    adaptive = serializers.BooleanField()
    action_floor = serializers.FloatField()
    enabled = serializers.BooleanField()
    muted_until = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_channels(self, rule) -> list[int]:
        return sorted(c.pk for c in rule.channels.all())


class RuleDetailOutput(RuleOutput):
    alerts = serializers.IntegerField(help_text="Decided alerts in the last weeks (acted on, or ignored for 7 days).")
    acted = serializers.IntegerField()
    action_rate = serializers.FloatField(allow_null=True)
    by_type = serializers.DictField(child=StatsGroup())
    by_key_kind = serializers.DictField(child=StatsGroup())
    flagged = serializers.BooleanField(help_text="Acted on less than 20% of the time (at least 5 alerts).")
    suggestion = serializers.DictField(allow_null=True)


def rule_data(rule, *, weeks=DEFAULT_WEEKS) -> dict:
    stats = rule_action_stats(rule=rule, weeks=weeks)
    return {**RuleOutput(rule).data, **{k: v for k, v in stats.items() if k != "weeks"}}


NO_STATS = {"alerts": 0, "acted": 0, "action_rate": None, "by_type": {}, "by_key_kind": {}, "flagged": False}


def rule_stored_data(rule) -> dict:
    """rule_data from the action rate stored on the rule by the periodic task (no query per alert),
    with `action_stats_at`, when it was computed (None: not yet)."""
    stats = rule.action_stats or {**NO_STATS, "suggestion": None}
    return {
        **RuleOutput(rule).data,
        **{k: v for k, v in stats.items() if k != "weeks"},
        "weeks": stats.get("weeks", DEFAULT_WEEKS),
        "action_stats_at": rule.action_stats_at,
    }


def _weeks(request) -> int:
    raw = request.query_params.get("weeks", DEFAULT_WEEKS)
    try:
        weeks = int(raw)
        if not 1 <= weeks <= 52:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationFailed("weeks must be an integer from 1 to 52.", fields={"weeks": ["1 to 52."]})
    return weeks


WEEKS = OpenApiParameter(
    "weeks",
    {"type": "integer", "minimum": 1, "maximum": 52},
    description="The action rate's span in weeks (default 4).",
)


class RuleListCreateApi(ApiView):
    @extend_schema(
        parameters=[WEEKS], responses={200: RuleDetailOutput(many=True), **ERRORS}, operation_id="alert_rules_list"
    )
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        weeks = _weeks(request)
        return Response([rule_data(r, weeks=weeks) for r in rule_list(project=project)])

    @extend_schema(
        request=RuleInput, responses={201: RuleDetailOutput, **CONFLICT, **ERRORS}, operation_id="alert_rules_create"
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = RuleInput(data=request.data)
        data.is_valid(raise_exception=True)
        rule = rule_create(project=project, user=request.user, values=dict(data.validated_data))
        return Response(rule_data(rule), status=status.HTTP_201_CREATED)


class RuleDetailApi(ApiView):
    @extend_schema(parameters=[WEEKS], responses={200: RuleDetailOutput, **ERRORS}, operation_id="alert_rules_read")
    def get(self, request, project_id, rule_id):
        rule = access_rule(user=request.user, project_id=project_id, rule_id=rule_id)
        return Response(rule_data(rule, weeks=_weeks(request)))

    @extend_schema(
        request=RulePatchInput,
        responses={200: RuleDetailOutput, **CONFLICT, **ERRORS},
        operation_id="alert_rules_update",
    )
    def patch(self, request, project_id, rule_id):
        rule = access_rule(user=request.user, project_id=project_id, rule_id=rule_id, roles=MANAGER_ROLES)
        data = RulePatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        rule = rule_update(rule=rule, values=dict(data.validated_data))
        return Response(rule_data(rule))

    @extend_schema(responses={204: None, **ERRORS}, operation_id="alert_rules_delete")
    def delete(self, request, project_id, rule_id):
        rule = access_rule(user=request.user, project_id=project_id, rule_id=rule_id, roles=MANAGER_ROLES)
        rule_delete(rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MuteInput(inputs.Input):
    until = inputs.TimestampField(help_text="Alerts are recorded but not sent until then.")


class RuleMuteApi(ApiView):
    @extend_schema(request=MuteInput, responses={200: RuleDetailOutput, **ERRORS}, operation_id="alert_rules_mute")
    def post(self, request, project_id, rule_id):
        rule = access_rule(user=request.user, project_id=project_id, rule_id=rule_id, roles=MANAGER_ROLES)
        data = MuteInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(rule_data(rule_mute(rule=rule, until=data.validated_data["until"])))


class RuleUnmuteApi(ApiView):
    @extend_schema(request=None, responses={200: RuleDetailOutput, **ERRORS}, operation_id="alert_rules_unmute")
    def post(self, request, project_id, rule_id):
        rule = access_rule(user=request.user, project_id=project_id, rule_id=rule_id, roles=MANAGER_ROLES)
        return Response(rule_data(rule_unmute(rule=rule)))


class AlertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    rule = serializers.IntegerField(source="rule_id")
    rule_name = serializers.CharField(source="rule.name")
    event = serializers.SerializerMethodField()
    key = serializers.CharField()
    status = serializers.CharField()
    delivery = serializers.CharField(help_text="immediate, digest or suppressed (muted or snoozed).")
    action = serializers.CharField(
        help_text="What people did after it: none, acknowledged, triaged, assigned, resolved."
    )
    action_at = serializers.DateTimeField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", allow_null=True, default=None)
    recipients = serializers.ListField(child=serializers.IntegerField())
    acknowledge_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_event(self, alert) -> dict:
        e = alert.event
        return {"id": e.pk, "type": e.type, "subject": e.subject, "path": e.path, "created_at": e.created_at}

    def get_acknowledge_url(self, alert) -> str:
        return acknowledge_url(alert)


class AlertListApi(ApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=AlertStatus.values),
            OpenApiParameter("rule", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}, description="A rule id."),
        ],
        responses={200: AlertOutput(many=True), **ERRORS},
        operation_id="alerts_list",
    )
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        rows = alert_list(
            project=project, status=request.query_params.get("status"), rule_id=request.query_params.get("rule")
        )
        return Response(AlertOutput(rows, many=True).data)


class AlertAcknowledgeApi(ApiView):
    @extend_schema(request=None, responses={200: AlertOutput, **ERRORS}, operation_id="alerts_acknowledge")
    def post(self, request, alert_id):
        alert = access_alert(user=request.user, alert_id=alert_id)
        return Response(AlertOutput(alert_acknowledge(alert=alert, user=request.user)).data)


class SnoozeInput(inputs.Input):
    until = inputs.TimestampField(required=False, help_text="Not sent again until then.")
    occurrences = serializers.IntegerField(
        required=False, min_value=1, max_value=100_000, help_text="Not sent for the next N occurrences."
    )


class SnoozeOutput(serializers.Serializer):
    rule = serializers.IntegerField(source="rule_id")
    key = serializers.CharField()
    until = serializers.DateTimeField(allow_null=True)
    occurrences_left = serializers.IntegerField(allow_null=True)


class AlertSnoozeApi(ApiView):
    @extend_schema(request=SnoozeInput, responses={200: SnoozeOutput, **ERRORS}, operation_id="alerts_snooze")
    def post(self, request, alert_id):
        alert = access_alert(user=request.user, alert_id=alert_id)
        data = SnoozeInput(data=request.data)
        data.is_valid(raise_exception=True)
        snooze = alert_snooze(
            alert=alert,
            user=request.user,
            until=data.validated_data.get("until"),
            occurrences=data.validated_data.get("occurrences"),
        )
        return Response(SnoozeOutput(snooze).data)


class UserRef(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class Handover(serializers.Serializer):
    at = serializers.DateTimeField()
    user = UserRef(allow_null=True)


class OnCallOutput(serializers.Serializer):
    members = UserRef(many=True)
    handover_weekday = serializers.IntegerField(help_text="0 = Monday.")
    handover_hour = serializers.IntegerField(help_text="UTC.")
    current = UserRef(allow_null=True)
    handovers = Handover(many=True, help_text="The next four hand-overs.")


@extend_schema_field(
    {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 150}, {"type": "integer", "minimum": 1}]}
)
class MemberRef(serializers.JSONField):
    """A username or a user id."""


class OnCallInput(inputs.Input):
    members = serializers.ListField(
        child=MemberRef(), max_length=100, help_text="Usernames or user ids of project members, in turn order."
    )
    handover_weekday = serializers.IntegerField(min_value=0, max_value=6, default=0)
    handover_hour = serializers.IntegerField(min_value=0, max_value=23, default=9)


class OnCallApi(ApiView):
    @extend_schema(responses={200: OnCallOutput, **ERRORS}, operation_id="on_call_read")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        return Response(OnCallOutput(on_call_summary(project)).data)

    @extend_schema(request=OnCallInput, responses={200: OnCallOutput, **ERRORS}, operation_id="on_call_set")
    def put(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = OnCallInput(data=request.data)
        data.is_valid(raise_exception=True)
        rotation_set(project=project, **data.validated_data)
        return Response(OnCallOutput(on_call_summary(project)).data)
