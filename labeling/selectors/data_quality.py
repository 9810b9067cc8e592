"""Reads of the batches' data-quality records, for the project page."""

from labeling.models import BatchCheckStatus, BatchProfile

RECENT = 10


def batch_checks_recent(*, project, limit: int = RECENT) -> dict:
    """The project's last batches with their failed checks (each with the bug filed for it, if any)
    and the counts shown on the page's card."""
    rows = list(
        BatchProfile.objects.filter(project=project)
        .exclude(status=BatchCheckStatus.SKIPPED)
        .order_by("-id")
        .values("id", "rows", "status", "checks", "bug_ids", "created_at")[:limit]
    )
    for row in rows:
        for check in row["checks"]:
            check["bug_id"] = row["bug_ids"].get(f"{check['field']}:{check['check']}")
    return {
        "batches": rows,
        "failed": sum(1 for r in rows if r["status"] == BatchCheckStatus.FAILED),
        "checks": sum(len(r["checks"]) for r in rows),
        "learning": bool(rows) and all(r["status"] == BatchCheckStatus.LEARNING for r in rows),
    }
