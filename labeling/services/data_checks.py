"""Data-quality checks of ingested batches: profile each stored batch, compare it with the project's
recent batches, record the result, and announce each failed check as a `data_quality.alert` event
(one per field and check; the bug queue files a bug for it, the alerts app routes it).

A check never rejects a batch: it runs after the batch is written, and `batch_data_check` swallows
and logs its own failures, so ingestion answers the same whatever the checks do. The statistics are
in labeling.stats.data_profile."""

import logging

import numpy as np
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from common.events import emit
from labeling.models import BatchCheckStatus, BatchProfile, Project
from labeling.stats.data_profile import (
    MIN_REFERENCE,
    Batch,
    batch_frame,
    example_rows,
    profile_batch,
    run_checks,
    top_probabilities,
)

logger = logging.getLogger(__name__)

REFERENCE_BATCHES = 20  # K: the reference is the project's last K profiled batches
MIN_BATCH_ROWS = 20  # smaller batches (a bug report's few items) are recorded, not checked or used as reference
EXAMPLES = 5


def _batch(parsed) -> Batch:
    """The checks' view of a parsed batch. The top probabilities come from the predictions' packed
    vectors (labeling.services.ingestion.probability_vector) in one numpy pass when every row has one."""
    preds = [p.prediction for p in parsed]
    vectors = [pr.vector if pr is not None else None for pr in preds]
    if vectors and all(vectors):
        confidence = np.frombuffer(b"".join(vectors), dtype=">f8").reshape(len(vectors), -1).max(axis=1)
    else:
        confidence = top_probabilities([(pr.label, pr.probabilities) if pr else None for pr in preds])
    return batch_frame(
        external_ids=[p.external_id for p in parsed],
        payloads=[p.payload for p in parsed],
        labels=[pr.label if pr is not None else None for pr in preds],
        confidence=confidence,
    )


def batch_data_check(*, project: Project, parsed: list) -> list[dict]:
    """Profile and check a batch that is already stored; return its failed checks (empty when it is
    within recent variation, while the project is learning, or when the check itself failed)."""
    checks = []
    try:
        with transaction.atomic():
            checks = batch_profile_record(project=project, batch=_batch(parsed)).checks
    except Exception:  # the checks, or a receiver of their events run at this block's commit
        logger.exception("data-quality check of a batch of project %s failed; the batch is stored", project.pk)
    return checks


@transaction.atomic
def batch_profile_record(*, project: Project, batch: Batch, now=None) -> BatchProfile:
    """Store the batch's profile and failed checks; emit one data_quality.alert per failed check."""
    now = now or timezone.now()
    rows = len(batch.external_ids)
    profile = profile_batch(batch)
    if rows < MIN_BATCH_ROWS:
        return BatchProfile.objects.create(
            project=project, rows=rows, profile=profile, status=BatchCheckStatus.SKIPPED, created_at=now
        )
    reference = list(
        BatchProfile.objects.filter(project=project)
        .exclude(status=BatchCheckStatus.SKIPPED)
        .order_by("-id")
        .values_list("profile", flat=True)[:REFERENCE_BATCHES]
    )
    failed = []
    for result in run_checks(profile, reference):
        if result.fired:
            check = result.as_dict()
            check["examples"] = example_rows(batch, result, EXAMPLES)
            failed.append(check)
    if len(reference) < MIN_REFERENCE:
        status = BatchCheckStatus.LEARNING
    else:
        status = BatchCheckStatus.FAILED if failed else BatchCheckStatus.OK
    record = BatchProfile.objects.create(
        project=project, rows=rows, profile=profile, status=status, checks=failed, created_at=now
    )
    path = reverse("project-detail", args=[project.pk]) + "#data-checks"
    for check in failed:
        emit(
            project_id=project.pk,
            type="data_quality.alert",
            subject=f"Batch {record.pk}: {check['field']} {check['check'].replace('_', ' ')}",
            data={
                "batch": record.pk,
                "rows": rows,
                "checks": [{k: check[k] for k in ("field", "check", "observed", "expected")}],
                "would_have_fired": check["would_have_fired"],
                "of_last": check["of_last"],
                "examples": check["examples"],
                "bug_id": None,
            },
            path=path,
            key=f"data_quality:{check['field']}:{check['check']}",
        )
    return record


@transaction.atomic
def batch_profile_bug_link(*, batch_id: int, field: str, check: str, bug_id: int) -> None:
    """Record the bug filed for one failed check of a batch (called by the bug queue)."""
    record = BatchProfile.objects.select_for_update().filter(pk=batch_id).first()
    if record is None:
        return
    record.bug_ids = {**record.bug_ids, f"{field}:{check}": bug_id}
    BatchProfile.objects.filter(pk=batch_id).update(bug_ids=record.bug_ids)
