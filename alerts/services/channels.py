"""Channels: creating, changing and deleting where alerts go, rotating a webhook's signing secret, and
sending a test message. A channel is checked whole before anything is written: a webhook needs an
http(s) URL, an email channel addresses (valid ones) or its project's members, a chat channel an
apprise URL that apprise accepts. Re-enabling a channel clears its failure count and reason."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction

from alerts.models import Channel, ChannelKind, Delivery, new_secret
from alerts.services.delivery import deliveries_create
from alerts.services.events import event_body, event_record
from common.errors import Conflict, NotFound, ValidationFailed

MAX_NAME = 100
MAX_URL = 1000
MAX_EMAILS = 50

_http_url = URLValidator(schemes=["http", "https"])


def _check_webhook_url(url: str) -> str | None:
    if not url:
        return "A webhook needs a URL."
    try:
        _http_url(url)
    except ValidationError:
        return "Enter an http:// or https:// URL."
    if urlsplit(url).username or urlsplit(url).password:
        return "Put no credentials in the URL: the payload is signed with the channel's secret."
    return None


def _check_chat_url(url: str) -> str | None:
    if not url:
        return "A chat channel needs an apprise URL (slack://…, msteams://…, discord://…, json://…)."
    import apprise

    if not apprise.Apprise().add(url):
        return "apprise does not accept this URL: see the apprise wiki for the URL of your service."
    return None


def _clean_emails(emails) -> tuple[list[str], list[str]]:
    """(cleaned addresses, messages about the bad ones)."""
    cleaned, bad = [], []
    for raw in emails or []:
        address = str(raw).strip()
        try:
            validate_email(address)
        except ValidationError:
            bad.append(f"{address!r} is not an email address.")
            continue
        if address.lower() not in {a.lower() for a in cleaned}:
            cleaned.append(address)
    if len(cleaned) > MAX_EMAILS:
        bad.append(f"At most {MAX_EMAILS} addresses.")
    return cleaned, bad


def channel_validate(*, kind: str, name: str, url: str, emails, to_members: bool) -> dict:
    """The channel's cleaned fields, or ValidationFailed naming every bad field (nothing written)."""
    fields: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        fields["name"] = ["A channel needs a name."]
    elif len(name) > MAX_NAME:
        fields["name"] = [f"At most {MAX_NAME} characters."]
    url = (url or "").strip()
    if len(url) > MAX_URL:
        fields["url"] = [f"At most {MAX_URL} characters."]
    cleaned_emails: list[str] = []
    if kind == ChannelKind.WEBHOOK:
        if "url" not in fields and (problem := _check_webhook_url(url)):
            fields["url"] = [problem]
    elif kind == ChannelKind.CHAT:
        if "url" not in fields and (problem := _check_chat_url(url)):
            fields["url"] = [problem]
    elif kind == ChannelKind.EMAIL:
        cleaned_emails, bad = _clean_emails(emails)
        if bad:
            fields["emails"] = bad
        elif not cleaned_emails and not to_members:
            fields["emails"] = ["An email channel needs addresses, or to_members to mail the project's members."]
        url = ""
    else:
        fields["kind"] = [f"kind must be one of {', '.join(ChannelKind.values)}."]
    if fields:
        first = next(iter(fields))
        raise ValidationFailed(f"{first}: {fields[first][0]}", fields=fields)
    return {
        "kind": kind,
        "name": name,
        "url": url if kind != ChannelKind.EMAIL else "",
        "emails": cleaned_emails if kind == ChannelKind.EMAIL else [],
        "to_members": bool(to_members) if kind == ChannelKind.EMAIL else False,
    }


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"A channel named {name!r} exists in this project.", code="channel_exists", fields={"name": ["Taken."]}
    )


@transaction.atomic
def channel_create(
    *, project, actor, kind: str, name: str, url: str = "", emails=(), to_members: bool = False
) -> Channel:
    """A new enabled channel with a fresh secret (the caller shows it once)."""
    clean = channel_validate(kind=kind, name=name, url=url, emails=emails, to_members=to_members)
    try:
        with transaction.atomic():
            return Channel.objects.create(project=project, created_by=actor, **clean)
    except IntegrityError:
        raise _name_taken(clean["name"])


def _locked(channel: Channel) -> Channel:
    locked = Channel.objects.select_for_update().filter(pk=channel.pk).first()
    if locked is None:
        raise NotFound("Channel not found.")
    return locked


@transaction.atomic
def channel_update(*, channel: Channel, actor, **changes) -> Channel:
    """Change name, url, emails, to_members (the kind stays) and enabled; the result is checked whole.
    Enabling clears the failure count and reason; disabling by hand records who did it."""
    row = _locked(channel)
    merged = {
        "kind": row.kind,
        "name": changes.get("name", row.name),
        "url": changes.get("url", row.url),
        "emails": changes.get("emails", row.emails),
        "to_members": changes.get("to_members", row.to_members),
    }
    clean = channel_validate(**merged)
    for key, value in clean.items():
        setattr(row, key, value)
    if "enabled" in changes and bool(changes["enabled"]) != row.enabled:
        row.enabled = bool(changes["enabled"])
        if row.enabled:
            row.consecutive_failures, row.disabled_reason = 0, ""
        else:
            who = getattr(actor, "username", "") or "a manager"
            row.disabled_reason = f"Disabled by {who}."
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        raise _name_taken(clean["name"])
    return row


@transaction.atomic
def channel_delete(*, channel: Channel) -> None:
    """Delete the channel with its deliveries and their log (rules simply lose it)."""
    _locked(channel).delete()


@transaction.atomic
def channel_rotate_secret(*, channel: Channel) -> Channel:
    """A new signing secret; the old one stops working at once (the caller shows the new one once)."""
    row = _locked(channel)
    row.secret = new_secret()
    row.save(update_fields=["secret"])
    return row


@transaction.atomic
def channel_test(*, channel: Channel, actor) -> Delivery:
    """Send an alert.test message to the channel (stored as an event, delivered like any message);
    the delivery is pending until a worker sends it. A disabled channel is a Conflict."""
    row = _locked(channel)
    if not row.enabled:
        raise Conflict(
            "This channel is disabled: enable it first (PATCH enabled=true), then send a test.",
            code="channel_disabled",
        )
    who = getattr(actor, "username", "") or "loupe"
    event = event_record(
        project_id=row.project_id,
        type="alert.test",
        subject=f"Test message to {row.name} from {who}",
        data={"channel_id": row.pk},
        path=f"/projects/{row.project_id}/channels",
        key=f"channel:{row.pk}",
    )
    (delivery,) = deliveries_create(channels=[row], body=event_body(event), idempotency_key=f"test:{event.pk}")
    return delivery
