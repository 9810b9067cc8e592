"""Recompute the default fingerprints of existing bugs with the grouping that ignores punctuation
and variable parts (bugqueue.services.grouping.normalize_title).

Only a bug whose fingerprint equals the old default (sha256 of kind + the title with case and
whitespace normalized) is recomputed; a client-supplied fingerprint is never that, and stays
exact. Where several open bugs of a project now share a fingerprint, the one that already has it
(else the oldest) takes it; the others keep their old fingerprint, and their history says which bug
they now group with, so a manager can merge them (POST /api/bugs/merge). The constraint
bug_one_open_per_fingerprint therefore holds at every step.
"""

import hashlib
import re
import unicodedata

from django.db import migrations

_SPACES = re.compile(r"\s+")


def _old_default(kind: str, title: str) -> str:
    normalized = _SPACES.sub(" ", unicodedata.normalize("NFKC", title or "")).strip().casefold()
    return hashlib.sha256(f"{kind}\x1f{normalized}".encode()).hexdigest()


def regroup(apps, schema_editor):
    from bugqueue.services.grouping import default_fingerprint

    Bug = apps.get_model("bugqueue", "Bug")
    BugEvent = apps.get_model("bugqueue", "BugEvent")
    open_statuses = ("new", "triaged", "in_progress")
    changes = {}  # bug id -> new fingerprint
    open_by_fp = {}  # (project, new fingerprint) -> [(keeps it already, id)]
    rows = Bug.objects.order_by("pk").values_list("pk", "project_id", "kind", "title", "fingerprint", "status")
    for pk, project_id, kind, title, fingerprint, status in rows.iterator(chunk_size=2000):
        if fingerprint != _old_default(kind, title):
            if status in open_statuses:  # a client fingerprint: it holds its place
                open_by_fp.setdefault((project_id, fingerprint), []).append((True, pk))
            continue
        new = default_fingerprint(kind=kind, title=title)
        if status in open_statuses:
            open_by_fp.setdefault((project_id, new), []).append((new == fingerprint, pk))
        if new != fingerprint:
            changes[pk] = new
    events = []
    for (_, fingerprint), holders in open_by_fp.items():
        if len(holders) < 2:
            continue
        keeper = min(holders, key=lambda h: (not h[0], h[1]))[1]
        for _, pk in holders:
            if pk != keeper:
                changes.pop(pk, None)
                events.append(
                    BugEvent(
                        bug_id=pk,
                        field="fingerprint",
                        note=f"Grouping now ignores punctuation and numbers: this bug groups with #{keeper}, which "
                        "receives its new reports. It keeps its old fingerprint; merge it into "
                        f"#{keeper} to bring its failures and occurrences there.",
                    )
                )
    pending = list(changes.items())
    for start in range(0, len(pending), 1000):
        chunk = pending[start : start + 1000]
        bugs = list(Bug.objects.filter(pk__in=[pk for pk, _ in chunk]))
        by_pk = dict(chunk)
        for bug in bugs:
            bug.fingerprint = by_pk[bug.pk]
        Bug.objects.bulk_update(bugs, ["fingerprint"])
    BugEvent.objects.bulk_create(events, batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("bugqueue", "0008_merge")]

    operations = [migrations.RunPython(regroup, migrations.RunPython.noop)]
