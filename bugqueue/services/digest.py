"""The weekly digest: built from the triage view, stored (one per project and ISO week), shown on
a page and mailed to the project's managers through Django's email backend (once)."""

import logging
from datetime import date

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from bugqueue.models import Digest
from bugqueue.selectors.triage import triage_week
from labeling.models import Membership, Project, Role

logger = logging.getLogger(__name__)
LISTED = 20


def _bug_row(b) -> dict:
    return {
        "id": b.pk,
        "title": b.title,
        "status": b.status,
        "priority": b.priority,
        "kind": b.kind,
        "occurrences": b.occurrences,
        "regressed": b.regressed,
        "tags": getattr(b, "tag_slugs", []),
        "assignee": b.assignee.username if b.assignee_id else None,
    }


def digest_data(*, project: Project, week_start: date) -> dict:
    view = triage_week(project=project, week_start=week_start, limit=LISTED)
    return {
        "week": view["week"],
        "start": view["start"].isoformat(),
        "end": view["end"].isoformat(),
        "stats": view["stats"],
        "totals": view["totals"],
        "new": [_bug_row(b) for b in view["sections"]["new"]],
        "reopened": [_bug_row(b) for b in view["sections"]["reopened"]],
        "backlog": [_bug_row(b) for b in view["sections"]["backlog"]],
        "tags": view["tags"][:10],
    }


@transaction.atomic
def digest_build(*, project: Project, week_start: date) -> Digest:
    """Build (or rebuild) the stored digest of one ISO week. Idempotent."""
    data = digest_data(project=project, week_start=week_start)
    digest, created = Digest.objects.select_for_update().get_or_create(
        project=project, week_start=week_start, defaults={"data": data}
    )
    if not created and digest.data != data:
        digest.data = data
        digest.save(update_fields=["data"])
    return digest


def digest_recipients(*, project: Project) -> list[str]:
    return sorted(
        set(
            Membership.objects.filter(project=project, role=Role.MANAGER, user__is_active=True)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


@transaction.atomic
def digest_send(*, digest: Digest) -> Digest:
    """Mail the digest to the project's managers, once (a second call sends nothing). A week in
    which nothing happened and no bug is open is stored but not mailed."""
    digest = Digest.objects.select_for_update().select_related("project").get(pk=digest.pk)
    if digest.sent_at is not None:
        return digest
    stats = digest.data["stats"]
    quiet = not any(stats[k] for k in ("opened", "reopened", "closed", "open"))
    recipients = [] if quiet else digest_recipients(project=digest.project)
    if recipients:
        context = {
            "digest": digest,
            "project": digest.project,
            "data": digest.data,
            "base_url": settings.LOUPE_BASE_URL.rstrip("/"),
        }
        subject = (
            f"[Loupe] {digest.project.name}: bugs of {digest.week_label}: {stats['opened']} new, "
            f"{stats['reopened']} reopened, {stats['closed']} closed"
        )
        message = EmailMultiAlternatives(
            subject=subject,
            body=render_to_string("bugqueue/email/digest.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
        )
        message.attach_alternative(render_to_string("bugqueue/email/digest.html", context), "text/html")
        message.send()
        logger.info(
            "digest %s (%s, %s) mailed to %s managers",
            digest.pk,
            digest.project.name,
            digest.week_label,
            len(recipients),
        )
    digest.sent_at, digest.sent_to = timezone.now(), recipients
    digest.save(update_fields=["sent_at", "sent_to"])
    return digest
