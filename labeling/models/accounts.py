"""API tokens: django-rest-knox's token (only a hash of the secret is stored) with what Loupe adds.

A token is either a login token (one per POST /api/auth/token, expiring after LOUPE_TOKEN_TTL) or a
service token that staff create for a pipeline's account, named, with an expiry of their choosing or
none. Every token carries a stamp of the password hash it was issued under: a token whose stamp no
longer matches its user's password is dead, whichever way the password was changed.
"""

from django.conf import settings
from django.db import models
from django.utils.crypto import salted_hmac
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS


class TokenKind(models.TextChoices):
    LOGIN = "login", "Login"
    SERVICE = "service", "Service"


class ApiToken(AbstractAuthToken):
    # knox keys its own table by the digest; a plain id keeps the digest out of URLs and listings.
    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=CONSTANTS.DIGEST_LENGTH, unique=True)
    kind = models.CharField(max_length=16, choices=TokenKind.choices, default=TokenKind.LOGIN)
    name = models.CharField(max_length=100, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    password_stamp = models.CharField(max_length=64)

    def __str__(self):
        return f"{self.kind} token {self.id} of user {self.user_id}"


PASSWORD_STAMP_SALT = "loupe.api-token.password-stamp"


def password_stamps(password_hash: str) -> list[str]:
    """The stamps a live token of a user with this password hash may carry: an HMAC of the hash under
    SECRET_KEY, or under one of SECRET_KEY_FALLBACKS while a key rotation is under way."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [
        salted_hmac(PASSWORD_STAMP_SALT, password_hash or "", secret=secret, algorithm="sha256").hexdigest()
        for secret in secrets
    ]
