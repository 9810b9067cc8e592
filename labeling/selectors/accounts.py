"""Reads about users and their API tokens (for staff)."""

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from common.errors import NotFound
from labeling.models import ApiToken, TokenKind, password_stamp


def user_by_username(*, username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No user named {username!r}.", code="user_not_found")
    return user


def service_token_list(*, user):
    """The user's service tokens still in force: not expired, issued under the current password."""
    return (
        ApiToken.objects.filter(user=user, kind=TokenKind.SERVICE, password_stamp=password_stamp(user.password))
        .filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()))
        .select_related("created_by")
        .order_by("id")
    )
