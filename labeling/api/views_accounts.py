from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from labeling.api.base import ApiView

from labeling.api.permissions import IsStaff
from labeling.api.serializers import ERRORS, ErrorSerializer
from labeling.errors import ValidationFailed
from labeling.services.projects import user_create


class TokenApi(ApiView):
    permission_classes = [AllowAny]
    authentication_classes = []

    class Input(serializers.Serializer):
        username = serializers.CharField()
        password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)

    class Output(serializers.Serializer):
        token = serializers.CharField()

    @extend_schema(request=Input, responses={200: Output, 400: ErrorSerializer}, operation_id="auth_token")
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request=request, **data.validated_data)
        if user is None or not user.is_active:
            raise ValidationFailed("Unable to log in with the provided credentials.", code="invalid_credentials")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class UserCreateApi(ApiView):
    permission_classes = [IsStaff]

    class Input(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(trim_whitespace=False)
        is_staff = serializers.BooleanField(required=False, default=False)
        email = serializers.EmailField(required=False, default="")

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()

    @extend_schema(request=Input, responses={201: Output, 409: ErrorSerializer, **ERRORS}, operation_id="users_create")
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_create(**data.validated_data)
        return Response(self.Output(user).data, status=status.HTTP_201_CREATED)


class MeApi(ApiView):
    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        is_staff = serializers.BooleanField()

    @extend_schema(responses={200: Output}, operation_id="me")
    def get(self, request):
        return Response(self.Output(request.user).data)
