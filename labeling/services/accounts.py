"""API tokens: issue one per login, create named service tokens, revoke.

Secrets are returned once, at creation; only knox's hash of each is stored. Every token records the
stamp of its user's password (labeling.models.accounts), so a password change ends them all.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from knox.settings import knox_settings

from common.errors import NotFound
from labeling.models import ApiToken, TokenKind, password_stamp


def _create(*, user, kind, expiry: timedelta | None, name="", created_by=None) -> tuple[ApiToken, str]:
    return ApiToken.objects.create(
        user=user,
        expiry=expiry,
        kind=kind,
        name=name,
        created_by=created_by,
        password_stamp=password_stamp(user.password),
    )


@transaction.atomic
def token_issue_login(*, user) -> tuple[ApiToken, str]:
    """A new token for a successful login, expiring after LOUPE_TOKEN_TTL."""
    return _create(user=user, kind=TokenKind.LOGIN, expiry=knox_settings.TOKEN_TTL)


@transaction.atomic
def token_create_service(*, user, name: str, expires_in: int | None, actor) -> tuple[ApiToken, str]:
    """A named token for a service account, made by staff; expires_in None means it never expires."""
    expiry = None if expires_in is None else timedelta(seconds=expires_in)
    return _create(user=user, kind=TokenKind.SERVICE, expiry=expiry, name=name, created_by=actor)


@transaction.atomic
def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk).delete()


@transaction.atomic
def token_revoke_all(*, user) -> int:
    """Every token of the user, login and service alike; returns how many there were."""
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return deleted


@transaction.atomic
def token_revoke_by_id(*, user, token_id: int) -> None:
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    if not deleted:
        raise NotFound("No such token for this user.", code="token_not_found")


def tokens_prune() -> int:
    """Delete tokens that can no longer authenticate: expired ones, and never-expiring ones issued
    under a password their user has since changed. Returns how many."""
    deleted, _ = ApiToken.objects.filter(expiry__lt=timezone.now()).delete()
    stale = [
        t.pk
        for t in ApiToken.objects.filter(expiry__isnull=True)
        .select_related("user")
        .only("password_stamp", "user__password")
        if t.password_stamp != password_stamp(t.user.password)
    ]
    if stale:
        deleted += ApiToken.objects.filter(pk__in=stale).delete()[0]
    return deleted
