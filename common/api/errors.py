"""One error shape for every API failure: {"error": {"code", "message", "fields"?}}: the responses,
the handlers that turn every exception into one, and the serializers that document it in the schema."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.views import csrf as django_csrf
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from common.errors import DomainError


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.JSONField(required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


# The failures every endpoint can answer, for extend_schema(responses={..., **ERRORS}).
ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def error_response(*, status_code, code, message, fields=None, headers=None):
    body = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return Response(body, status=status_code, headers=headers)


def _flatten(detail):
    """DRF error details -> plain JSON (lists of messages, nested by field)."""
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def _first_message(fields):
    if isinstance(fields, dict):
        for key, value in fields.items():
            msg = _first_message(value)
            if msg:
                return msg if key in ("non_field_errors", "detail") else f"{key}: {msg}"
    if isinstance(fields, list):
        for value in fields:
            msg = _first_message(value)
            if msg:
                return msg
    if isinstance(fields, str):
        return fields
    return ""


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return error_response(status_code=exc.status, code=exc.code, message=exc.message, fields=exc.fields)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: let Django log it and answer 500

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if isinstance(fields, list):
            fields = {"non_field_errors": fields}
        message = _first_message(fields) or "Invalid input."
        return error_response(status_code=status.HTTP_400_BAD_REQUEST, code="invalid", message=message, fields=fields)
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    return error_response(status_code=response.status_code, code=str(code), message=str(detail), headers=headers)


# --- Errors Django answers itself (no DRF view reached) ----------------------------------------
# An unknown /api/ path, a CSRF failure, a 500 outside a DRF view: under /api/ these answer in the
# error shape too; every other path keeps Django's own pages (templates 403/404/500.html).


def is_api_path(request) -> bool:
    return request.path_info.startswith("/api/")


def _json_error(status_code, code, message):
    from django.http import JsonResponse

    return JsonResponse({"error": {"code": code, "message": message}}, status=status_code)


@csrf_exempt
def api_not_found(request, rest=None):
    """Unknown API paths answer 404 in the error shape, whatever the method (no CSRF check: there is
    no view to protect)."""
    return _json_error(404, "not_found", "No such API endpoint.")


def handler400(request, exception=None):
    if is_api_path(request):
        return _json_error(400, "bad_request", "Bad request.")
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if is_api_path(request):
        return _json_error(403, "permission_denied", "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)


def handler404(request, exception=None):
    if is_api_path(request):
        return _json_error(404, "not_found", "No such API endpoint.")
    return defaults.page_not_found(request, exception)


def handler500(request):
    if is_api_path(request):
        return _json_error(500, "server_error", "Internal server error.")
    return defaults.server_error(request)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: API views are CSRF-exempt by DRF (session-authenticated writes are checked
    by DRF and answer 403 in the error shape); anything else under /api/ gets the shape too."""
    if is_api_path(request):
        return _json_error(403, "csrf_failed", f"CSRF verification failed: {reason}")
    return django_csrf.csrf_failure(request, reason=reason)
