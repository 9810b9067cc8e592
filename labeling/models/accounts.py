"""API tokens: django-rest-knox's token (only a hash of the secret is stored) with what Loupe adds.

A token is either a login token (one per POST /api/auth/token, expiring after LOUPE_TOKEN_TTL) or a
service token that staff create for a pipeline's account, named, with an expiry of their choosing or
none. Every token carries a stamp of the password hash it was issued under: a token whose stamp no
longer matches its user's password is dead, whichever way the password was changed.
"""

import hashlib

from django.conf import settings
from django.db import models
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


def password_stamp(password_hash: str) -> str:
    """The stamp a live token of a user with this password hash carries: a digest of the (salted,
    already one-way) hash, which tells nothing the hash does not. It is not keyed with SECRET_KEY so
    that rotating the key does not end every service token."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()
