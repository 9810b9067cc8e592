"""Filing many reports of one project at once (batched reporting), with set-based writes.

The reports are grouped by fingerprint first. The open bugs of every fingerprint are locked in one
statement (primary-key order); a fingerprint without an open bug goes through the single-report
upsert loop (`grouping._locate`: the conditional UNIQUE constraint decides, the regression rule and
duplicates apply), one fingerprint at a time in sorted order, so two batches with overlapping
fingerprints take their locks in the same order. Then every failure is inserted in one bulk
statement, occurrence rows are written per bug and UTC day of the failures' own times (as
`bug_file` dates them), each bug's counter and first/last seen move once, a snoozed bug's return is
checked once, and each bug is announced once for the whole batch.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import F
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from bugqueue.models import OPEN_STATUSES, Bug, BugOccurrence, FailureExample
from bugqueue.services.announce import announce_bug_filed
from bugqueue.services.grouping import BugDraft, FailureData, FilingResult, _locate, occurrence_rows
from bugqueue.services.snooze import snooze_check_filed

BugTag = Bug.tags.through


@dataclass
class Filing:
    """One report to file: its fingerprint, what a new bug opens with, its failures."""

    fingerprint: str
    draft: BugDraft
    failures: list[FailureData] = field(default_factory=list)
    count_report: bool = True

    @property
    def added(self) -> int:
        return len(self.failures) if self.failures else (1 if self.count_report else 0)


def bugs_file_many(
    *, project_id: int, filings: list[Filing], now: datetime | None = None, actor=None
) -> list[FilingResult]:
    """File `filings` (reports of one project) as `grouping.bug_file` would file them one by one,
    in a constant number of statements per distinct fingerprint. Call inside a transaction.

    Returns one FilingResult per filing, in order: `created` is true for the first filing of a
    fingerprint whose bug this batch opened, `regressed` for the first filing of one it reopened;
    `occurrences` is the bug's count after the whole batch."""
    now = now or timezone.now()
    actor_id = getattr(actor, "pk", None)
    groups: dict[str, list[int]] = {}
    for i, filing in enumerate(filings):
        groups.setdefault(filing.fingerprint, []).append(i)
    added = {fp: sum(filings[i].added for i in idx) for fp, idx in groups.items()}
    # When each failure happened (bug_file's rule); a report without failures happened now.
    times = {id(f): f.occurred_at(now) for filing in filings for f in filing.failures}
    fp_seen: dict[str, tuple[datetime, datetime]] = {}
    for fp, idx in groups.items():
        ats = [times[id(f)] for i in idx for f in filings[i].failures]
        if any(not filings[i].failures and filings[i].count_report for i in idx):
            ats.append(now)
        if ats:
            fp_seen[fp] = (min(ats), max(ats))

    located: dict[str, tuple[Bug, bool, bool]] = {
        bug.fingerprint: (bug, False, False)
        for bug in Bug.objects.select_for_update()
        .filter(project_id=project_id, fingerprint__in=list(groups), status__in=OPEN_STATUSES)
        .order_by("pk")
    }
    for fp in sorted(set(groups) - set(located)):
        first = filings[groups[fp][0]]
        located[fp] = _locate(
            project_id=project_id,
            fingerprint=fp,
            draft=first.draft,
            failures=[f for i in groups[fp] for f in filings[i].failures],
            now=now,
            actor_id=actor_id,
            initial=added[fp],
            seen=fp_seen.get(fp) if added[fp] else None,
        )

    # A fingerprint may land on another's bug (a duplicate's target): count per bug.
    bugs: dict[int, Bug] = {}
    per_bug: dict[int, int] = {}
    span: dict[int, tuple[datetime, datetime]] = {}
    created_bugs: set[int] = set()
    regressed_bugs: set[int] = set()
    for fp, (bug, created, regressed) in located.items():
        bug = bugs.setdefault(bug.pk, bug)
        per_bug[bug.pk] = per_bug.get(bug.pk, 0) + (0 if created else added[fp])
        if fp in fp_seen and not created:
            lo, hi = span.get(bug.pk, fp_seen[fp])
            span[bug.pk] = (min(lo, fp_seen[fp][0]), max(hi, fp_seen[fp][1]))
        if created:
            created_bugs.add(bug.pk)
        if regressed:
            regressed_bugs.add(bug.pk)

    FailureExample.objects.bulk_create(
        [
            FailureExample(
                bug_id=located[filing.fingerprint][0].pk,
                project_id=project_id,
                item_id=f.item_id,
                external_id=f.external_id,
                payload=f.payload,
                model_version=f.model_version,
                predicted_label=f.predicted_label,
                expected_label=f.expected_label,
                predicted_at=f.predicted_at,
                occurred_at=times[id(f)],
                source=f.source,
                label_change_seq=f.label_change_seq,
                created_at=now,
            )
            for filing in filings
            for f in filing.failures
        ],
        batch_size=1000,
    )
    for bug_id, n in sorted(per_bug.items()):
        if n:  # a bug this batch opened was inserted with its occurrences already counted
            lo, hi = span[bug_id]
            Bug.objects.filter(pk=bug_id).update(
                occurrences=F("occurrences") + n,
                first_seen=Least(F("first_seen"), lo),
                last_seen=Greatest(F("last_seen"), hi),
                updated_at=now,
            )
            bug = bugs[bug_id]
            bug.occurrences += n  # the row is locked by this transaction: the value read is current
            bug.first_seen, bug.last_seen = min(bug.first_seen, lo), max(bug.last_seen, hi)
    # Occurrence rows: the failures' times per bug, and `now` for each counted report without failures.
    when: dict[int, list[datetime]] = {}
    for filing in filings:
        if not filing.added:
            continue
        bug_id = located[filing.fingerprint][0].pk
        when.setdefault(bug_id, []).extend([times[id(f)] for f in filing.failures] or [now])
    BugOccurrence.objects.bulk_create(
        [row for bug_id, ats in sorted(when.items()) for row in occurrence_rows(bug_id=bug_id, times=ats)]
    )
    for _, bug in sorted(bugs.items()):
        if bug.snoozed and per_bug[bug.pk]:
            snooze_check_filed(bug=bug, now=now)
    tags: dict[int, list[str]] = {bug_id: [] for bug_id in bugs}
    for bug_id, slug in BugTag.objects.filter(bug_id__in=list(bugs)).values_list("bug_id", "tag__slug"):
        tags[bug_id].append(slug)
    for bug_id, bug in sorted(bugs.items()):
        announce_bug_filed(
            bug=bug,
            created=bug_id in created_bugs,
            regressed=bug_id in regressed_bugs,
            added=per_bug[bug_id],
            tags=sorted(tags[bug_id]),
        )

    results = []
    seen: set[int] = set()
    for filing in filings:
        bug, created, regressed = located[filing.fingerprint]
        bug = bugs[bug.pk]
        first = bug.pk not in seen
        seen.add(bug.pk)
        results.append(
            FilingResult(
                bug=bug,
                created=created and first,
                regressed=regressed and first,
                occurrences=bug.occurrences,
                recorded=len(filing.failures),
            )
        )
    return results
