"""Limits on password guessing, for every way in: the login form, the admin and POST /api/auth/token.

django-axes counts failed logins in the cache, per username tried and per client address. Past
AXES_FAILURE_LIMIT failures either one is locked out until AXES_COOLOFF_TIME has passed since its
last failure; a failure during the lockout starts the cool-off again, so Retry-After is always the
whole cool-off. This module gives axes Loupe's client address, a username key that cannot collide
with an address key, and the lockout answer: 429 with Retry-After, in the API's error shape under
/api/ and as a page elsewhere.
"""

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.http import JsonResponse
from django.shortcuts import render
from rest_framework.throttling import AnonRateThrottle, BaseThrottle


def client_address(request) -> str:
    """REMOTE_ADDR, or the address that LOUPE_NUM_PROXIES trusted proxies put in X-Forwarded-For:
    DRF's rule, so the lockout and the API's rate limits count the same client."""
    return BaseThrottle().get_ident(request)


def attempted_username(request, credentials=None) -> str | None:
    """The username tried, as axes' per-account key. axes hashes a key's value without its name, so
    the value is prefixed: a username spelled like an address must not count against that address
    (reset one with `manage.py axes_reset_username user:<username>`)."""
    if credentials:
        username = credentials.get("username")
    else:
        data = getattr(request, "data", None) or request.POST
        username = data.get("username")
    return f"user:{username}" if username else None


def lockout_seconds(request=None) -> int:
    return int(get_cool_off(request).total_seconds())


def lockout_message(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return (
        f"Too many failed logins for this account or from this address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


def lockout_response(request, original_response=None, credentials=None):
    """What a locked-out login attempt gets (django-axes' AXES_LOCKOUT_CALLABLE)."""
    if original_response is not None and original_response.status_code == 429:
        return original_response  # the API view already answered in its error shape
    seconds = lockout_seconds(request)
    message = lockout_message(seconds)
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"error": {"code": "throttled", "message": message}}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(seconds)
    return response


class LoginGuardBackend(AxesStandaloneBackend):
    """Refuses every login while its username or address is locked out (first in
    AUTHENTICATION_BACKENDS). A call without a request (Django's test Client.login, a script) has no
    client to count and is left to the next backend: every HTTP way in passes its request."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class TokenRateThrottle(AnonRateThrottle):
    """All POST /api/auth/token requests of one client address (LOUPE_TOKEN_RATE): each success mints
    a token, so bursts are refused whether the passwords are right or wrong."""

    scope = "auth_token"
