from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.errors import ValidationFailed
from labeling.api.permissions import IsStaff
from labeling.login_guard import TokenRateThrottle, lockout_message, lockout_seconds
from labeling.models import ApiToken
from labeling.selectors.access import project_create_allowed
from labeling.selectors.accounts import service_token_list, user_by_username
from labeling.services.accounts import (
    token_create_service,
    token_issue_login,
    token_revoke,
    token_revoke_all,
    token_revoke_by_id,
)
from labeling.services.projects import user_create

THROTTLED = {429: ErrorSerializer}


class TokenApi(ApiView):
    """POST logs in (anonymous, rate-limited, locked out after repeated failures); DELETE ends the
    token the request is authenticated with."""

    def _logging_in(self):
        return getattr(self.request, "method", None) == "POST"

    def get_authenticators(self):
        return [] if self._logging_in() else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self._logging_in() else [IsAuthenticated()]

    def get_throttles(self):
        return [TokenRateThrottle()] if self._logging_in() else []

    def throttled(self, request, wait):
        raise exceptions.Throttled(wait=wait, detail="Too many login requests from this address.")

    class Input(inputs.Input):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=4096, style={"input_type": "password"}, trim_whitespace=False)

    class Output(serializers.Serializer):
        token = serializers.CharField()
        expiry = serializers.DateTimeField(help_text="When the token stops working (LOUPE_TOKEN_TTL after the login).")

    @extend_schema(
        request=Input,
        responses={200: Output, 400: ErrorSerializer, **THROTTLED},
        auth=[],
        operation_id="auth_token",
        description="Log in: a new token on every call, expiring after LOUPE_TOKEN_TTL. Repeated "
        "failures for one username or from one address answer 429 with Retry-After.",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        # django-axes reads and flags Django's request, which its middleware answers for.
        user = authenticate(request=request._request, **data.validated_data)
        if getattr(request._request, "axes_locked_out", False):
            seconds = lockout_seconds(request._request)
            raise exceptions.Throttled(wait=seconds, detail=lockout_message(seconds))
        if user is None or not user.is_active:
            raise ValidationFailed("Unable to log in with the provided credentials.", code="invalid_credentials")
        token, key = token_issue_login(user=user)
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return Response(self.Output({"token": key, "expiry": token.expiry}).data)

    @extend_schema(
        request=None,
        responses={204: None, **ERRORS},
        operation_id="auth_token_revoke",
        description="Revoke the token this request is authenticated with (log out).",
    )
    def delete(self, request):
        if not isinstance(request.auth, ApiToken):
            raise ValidationFailed("This request is not authenticated with a token.", code="no_token")
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRevokeAllApi(ApiView):
    @extend_schema(
        request=None,
        responses={204: None, **ERRORS},
        operation_id="auth_tokens_revoke_all",
        description="Revoke every token of the current user, service tokens included.",
    )
    def delete(self, request):
        token_revoke_all(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserCreateApi(ApiView):
    permission_classes = [IsStaff]

    class Input(inputs.Input):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(trim_whitespace=False)
        is_staff = serializers.BooleanField(required=False, default=False)
        email = serializers.EmailField(required=False, default="")
        can_create_projects = serializers.BooleanField(
            required=False, default=False, help_text="Allow this user to create projects (staff always may)."
        )

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()

    @extend_schema(
        request=Input,
        responses={201: Output, 409: ErrorSerializer, **ERRORS},
        operation_id="users_create",
        description="The password must pass Django's validators: at least 8 characters, not too "
        "similar to the username or email, not a common password, not all digits.",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_create(**data.validated_data)
        return Response(self.Output(user).data, status=status.HTTP_201_CREATED)


class ServiceTokenOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField(allow_null=True, help_text="null: never expires.")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)


class UserTokensApi(ApiView):
    """Service tokens: long-lived tokens that staff create for a pipeline's account."""

    permission_classes = [IsStaff]

    class Input(inputs.Input):
        name = serializers.CharField(max_length=100)
        expires_in = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            min_value=60,
            max_value=10 * 366 * 86400,
            help_text="Seconds until the token expires; null (the default) for a token that never expires.",
        )

    class CreatedOutput(ServiceTokenOutput):
        token = serializers.CharField(help_text="The secret: shown only in this answer.")

    @extend_schema(
        responses={200: ServiceTokenOutput(many=True), **ERRORS},
        operation_id="user_tokens_list",
        description="The user's service tokens in force (without their secrets).",
    )
    def get(self, request, username):
        user = user_by_username(username=username)
        return Response(ServiceTokenOutput(service_token_list(user=user), many=True).data)

    @extend_schema(
        request=Input,
        responses={201: CreatedOutput, **ERRORS},
        operation_id="user_tokens_create",
        description="Create a named token for the user; the secret is in this answer only. "
        "Like every token it ends when the user's password changes.",
    )
    def post(self, request, username):
        user = user_by_username(username=username)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        token, key = token_create_service(user=user, actor=request.user, **data.validated_data)
        token.token = key
        return Response(self.CreatedOutput(token).data, status=status.HTTP_201_CREATED)


class UserTokenDeleteApi(ApiView):
    permission_classes = [IsStaff]

    @extend_schema(responses={204: None, **ERRORS}, operation_id="user_tokens_revoke")
    def delete(self, request, username, token_id):
        token_revoke_by_id(user=user_by_username(username=username), token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(ApiView):
    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        is_staff = serializers.BooleanField()
        can_create_projects = serializers.SerializerMethodField()

        def get_can_create_projects(self, user) -> bool:
            return project_create_allowed(user=user)

    @extend_schema(responses={200: Output, **ERRORS}, operation_id="me")
    def get(self, request):
        return Response(self.Output(request.user).data)
