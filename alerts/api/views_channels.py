"""Channels API: a project's channels (webhook, email, chat), a test message, the signing secret
(shown once, at creation and on rotation) and each channel's delivery log. Managers only; thin:
selectors read, services write."""

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from alerts.models import Channel, ChannelKind, Delivery
from alerts.selectors.channels import (
    access_channel,
    access_channels,
    channel_list,
    channel_target,
    delivery_get,
    delivery_log,
)
from alerts.services.channels import (
    MAX_EMAILS,
    MAX_NAME,
    MAX_URL,
    channel_create,
    channel_delete,
    channel_rotate_secret,
    channel_test,
    channel_update,
)
from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.api.pagination import IdCursorPagination

CONFLICT = {409: ErrorSerializer}


class LastDeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    status_code = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class ChannelOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)
    target = serializers.SerializerMethodField()
    last_delivery = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "kind",
            "url",
            "emails",
            "to_members",
            "target",
            "enabled",
            "disabled_reason",
            "consecutive_failures",
            "created_at",
            "created_by",
            "last_delivery",
        ]

    def get_target(self, obj) -> str:
        return channel_target(obj)

    @extend_schema_field(LastDeliveryOutput(allow_null=True))
    def get_last_delivery(self, obj):
        if getattr(obj, "last_delivery_id", None) is None:
            return None
        return {
            "id": obj.last_delivery_id,
            "status": obj.last_delivery_status,
            "status_code": obj.last_delivery_code,
            "created_at": obj.last_delivery_at,
        }


class ChannelSecretOutput(ChannelOutput):
    secret = serializers.CharField(
        help_text="The webhook signing secret: shown here only (at creation and rotation), never in reads."
    )

    class Meta(ChannelOutput.Meta):
        fields = [*ChannelOutput.Meta.fields, "secret"]


class AttemptOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True, help_text="The HTTP answer (webhooks); null otherwise.")
    error = serializers.CharField()
    seconds = serializers.FloatField()


class DeliveryOutput(serializers.ModelSerializer):
    event = serializers.SerializerMethodField(help_text="The message's event type (alert.test for a test).")
    subject = serializers.SerializerMethodField()
    log = AttemptOutput(many=True, read_only=True, help_text="Every attempt, oldest first.")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "idempotency_key",
            "event",
            "subject",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "log",
        ]

    def get_event(self, obj) -> str:
        return str((obj.body or {}).get("type", ""))

    def get_subject(self, obj) -> str:
        return str((obj.body or {}).get("subject", ""))


class ChannelFields(inputs.Input):
    name = serializers.CharField(max_length=MAX_NAME)
    url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_URL,
        help_text="webhook: the http(s) URL; chat: an apprise URL (slack://, msteams://, discord://, json://...).",
    )
    emails = serializers.ListField(
        child=serializers.CharField(max_length=254),
        required=False,
        max_length=MAX_EMAILS,
        help_text="email: the addresses to mail.",
    )
    to_members = serializers.BooleanField(required=False, help_text="email: also mail the project's members.")


class ChannelListCreateApi(ApiView):
    class Input(ChannelFields):
        kind = serializers.ChoiceField(choices=ChannelKind.choices)

    @extend_schema(responses={200: ChannelOutput(many=True), **ERRORS}, operation_id="channels_list")
    def get(self, request, project_id):
        project = access_channels(user=request.user, project_id=project_id)
        return Response(ChannelOutput(channel_list(project=project), many=True).data)

    @extend_schema(
        request=Input,
        responses={201: ChannelSecretOutput, **CONFLICT, **ERRORS},
        operation_id="channels_create",
        description="Add a channel. webhook: `url` (http or https); email: `emails` and/or `to_members`; chat: "
        "an apprise `url`. The answer holds the signing secret, shown this once (see rotate-secret). "
        "409 channel_exists when the name is taken.",
    )
    def post(self, request, project_id):
        project = access_channels(user=request.user, project_id=project_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        channel = channel_create(project=project, actor=request.user, **data.validated_data)
        channel = access_channel(user=request.user, project_id=project.pk, channel_id=channel.pk)
        return Response(ChannelSecretOutput(channel).data, status=status.HTTP_201_CREATED)


class ChannelDetailApi(ApiView):
    class Input(ChannelFields):
        name = serializers.CharField(max_length=MAX_NAME, required=False)
        enabled = serializers.BooleanField(
            required=False, help_text="true re-enables a disabled channel and clears its failure count."
        )

    @extend_schema(responses={200: ChannelOutput, **ERRORS}, operation_id="channels_retrieve")
    def get(self, request, project_id, channel_id):
        channel = access_channel(user=request.user, project_id=project_id, channel_id=channel_id)
        return Response(ChannelOutput(channel).data)

    @extend_schema(
        request=Input,
        responses={200: ChannelOutput, **CONFLICT, **ERRORS},
        operation_id="channels_update",
        description="Change a channel (its kind stays); the result is validated as a whole.",
    )
    def patch(self, request, project_id, channel_id):
        channel = access_channel(user=request.user, project_id=project_id, channel_id=channel_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        channel_update(channel=channel, actor=request.user, **data.validated_data)
        channel = access_channel(user=request.user, project_id=project_id, channel_id=channel_id)
        return Response(ChannelOutput(channel).data)

    @extend_schema(responses={204: None, **ERRORS}, operation_id="channels_delete")
    def delete(self, request, project_id, channel_id):
        channel = access_channel(user=request.user, project_id=project_id, channel_id=channel_id)
        channel_delete(channel=channel)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelRotateSecretApi(ApiView):
    @extend_schema(
        request=None,
        responses={200: ChannelSecretOutput, **ERRORS},
        operation_id="channels_rotate_secret",
        description="A new signing secret, shown this once; the old one stops signing at once.",
    )
    def post(self, request, project_id, channel_id):
        channel = access_channel(user=request.user, project_id=project_id, channel_id=channel_id)
        rotated = channel_rotate_secret(channel=channel)
        channel = access_channel(user=request.user, project_id=project_id, channel_id=channel_id)
        channel.secret = rotated.secret
        return Response(ChannelSecretOutput(channel).data)


class ChannelTestApi(ApiView):
    @extend_schema(
        request=None,
        responses={202: DeliveryOutput, **CONFLICT, **ERRORS},
        operation_id="channels_test",
        description="Send an alert.test message to the channel. The answer is the delivery, pending until a "
        "worker sends it: read its outcome in …/deliveries. 409 channel_disabled for a disabled channel.",
    )
    def post(self, request, project_id, channel_id):
        channel = access_channel(user=request.user, project_id=project_id, channel_id=channel_id)
        delivery = channel_test(channel=channel, actor=request.user)
        delivery = delivery_get(channel=channel, delivery_id=delivery.pk)
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveriesPagination(IdCursorPagination):
    ordering = "-id"
    page_size = 50


class ChannelDeliveriesApi(ApiView):
    pagination_class = DeliveriesPagination

    @extend_schema(
        responses={200: DeliveryOutput(many=True), **ERRORS},
        operation_id="channels_deliveries",
        description="The channel's delivery log, newest first: status, attempts, last status code and error, "
        "and every attempt.",
    )
    def get(self, request, project_id, channel_id):
        channel = access_channel(user=request.user, project_id=project_id, channel_id=channel_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(delivery_log(channel=channel), request, view=self)
        return paginator.get_paginated_response(DeliveryOutput(page, many=True).data)
