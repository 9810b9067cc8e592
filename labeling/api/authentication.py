"""`Authorization: Token <key>`: django-rest-knox's check (hashed, expiring tokens) with Loupe's rules.

A token issued under a password the user no longer has is refused and deleted, whichever way the
password changed (API, admin, `manage.py changepassword`, a raw UPDATE). A key that is not of the
form Loupe issues is refused before it reaches the database. Expired tokens other than the one
presented are left to the periodic prune (labeling.tasks.tokens_prune).
"""

import re

from django.utils import timezone
from django.utils.crypto import constant_time_compare
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework import exceptions

from labeling.models import password_stamp

# knox keys are 64 hex digits; keys of DRF's former tokens (carried over by migration) are 40.
_KEY_FORM = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class TokenAuthentication(KnoxTokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        try:
            key = token.decode("ascii")
        except UnicodeDecodeError:
            key = ""
        if not _KEY_FORM.fullmatch(key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token) -> bool:
        """knox deletes all of the user's expired tokens here, one more query per request; only this
        token is checked (an expired one is deleted and refused), the rest are pruned periodically."""
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False

    def validate_user(self, auth_token):
        user, token = super().validate_user(auth_token)
        if not constant_time_compare(token.password_stamp, password_stamp(user.password)):
            token.delete()
            raise exceptions.AuthenticationFailed("This token ended when the account's password changed.")
        return user, token
