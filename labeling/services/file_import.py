"""Importing items from an uploaded file: CSV, JSON Lines, or a JSON array of objects.

The file is stored first (Django storage; Django's upload handlers have already spooled a large
upload to a temporary file, and storage copies it in chunks). Its first rows give the columns, a
preview and a default mapping by column name; the manager adjusts the mapping; a task then reads the
file row by row and sends batches of IMPORT_BATCH_ROWS through labeling.services.ingestion.items_ingest,
the same validation and idempotent upsert as the API. A batch that fails validation is not lost: its
bad rows are recorded (row number and reason) and the rest of the batch goes in.

Reading and mapping rows is labeling.services.file_formats. CSV and JSON Lines are streamed. A JSON
array is parsed whole (no streaming JSON parser is installed), so it is refused above
JSON_ARRAY_MAX_BYTES: such a file should be sent as JSON Lines.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.errors import Conflict, ValidationFailed
from labeling.models import ImportFormat, ImportJob, ImportRejection, ImportStatus, Project
from labeling.selectors.projects import project_label_keys
from labeling.services.file_formats import (
    JSON_ARRAY_MAX_BYTES,
    MAX_COLUMNS,
    _Counting,
    format_detect,
    mapping_check,
    mapping_default,
    row_map,
    rows_read,
)
from labeling.services.ingestion import items_ingest
from labeling.services.work import enqueue_on_commit

IMPORT_BATCH_ROWS = 2000
IMPORT_MAX_BYTES = 2 * 2**30  # an upload's size limit (it is spooled to disk, never held in memory)
PREVIEW_ROWS = 10
IMPORT_TASK = "loupe.file_import_run"  # labeling.tasks.file_import_run


# --- the job ----------------------------------------------------------------------------------


def _columns_and_preview(fmt: str, name: str) -> tuple[list[str], list[dict]]:
    columns: dict[str, None] = {}
    preview = []
    with default_storage.open(name, "rb") as raw:
        for n, row, reason in rows_read(fmt, raw):
            if row is None:
                preview.append({"_row": n, "_error": reason})
            else:
                columns.update(dict.fromkeys(row))
                preview.append({"_row": n, **{k: _preview_value(v) for k, v in row.items()}})
            if len(preview) >= PREVIEW_ROWS:
                break
    return list(columns), preview


def _preview_value(value):
    if isinstance(value, str) and len(value) > 300:
        return value[:300] + "…"
    return value


def import_create(*, project: Project, actor, upload, mapping=None) -> ImportJob:
    """Store an uploaded file and read its columns and first rows; the job waits for its mapping
    (the default one, or `mapping` when given). ValidationFailed when the file cannot be read."""
    if upload is None:
        raise ValidationFailed("Choose a file to import.", fields={"file": ["No file was uploaded."]})
    if not upload.size:
        raise ValidationFailed("The file is empty.", fields={"file": ["The file is empty."]})
    name = re.sub(r"[\x00-\x1f\x7f\\/]", "", (upload.name or "").rsplit("/", 1)[-1])[-200:].strip() or "upload"
    head = next(upload.chunks(4096), b"")
    upload.seek(0)
    fmt = format_detect(name, head)
    if fmt == ImportFormat.JSON and upload.size > JSON_ARRAY_MAX_BYTES:
        raise ValidationFailed(
            f"A JSON array file holds at most {JSON_ARRAY_MAX_BYTES // 2**20} MB (it is read whole); "
            "send a larger file as JSON Lines (one object per line) or CSV.",
            fields={"file": ["Too large for a JSON array."]},
        )
    stored = default_storage.save(f"imports/{timezone.now():%Y/%m}/{name}", upload)
    try:
        columns, preview = _columns_and_preview(fmt, stored)
        if not columns:
            raise ValidationFailed("The file holds no rows to import.", fields={"file": ["No rows."]})
        if len(columns) > MAX_COLUMNS:
            raise ValidationFailed(f"The file has {len(columns)} columns; at most {MAX_COLUMNS}.")
        label_keys = project_label_keys(project=project)
        if mapping is None:
            mapping = mapping_default(columns=columns, label_keys=label_keys)
        else:
            mapping = mapping_check(mapping=mapping, columns=columns, label_keys=label_keys)
    except ValidationFailed as exc:
        default_storage.delete(stored)
        if exc.fields is None:
            exc.fields = {"file": [exc.message]}
        raise
    job = ImportJob(
        project=project,
        created_by=actor if getattr(actor, "pk", None) else None,
        original_name=name,
        format=fmt,
        byte_size=upload.size,
        columns=columns,
        preview=preview,
        mapping=mapping,
    )
    job.file.name = stored
    job.save()
    return job


def _job_locked(job_id: int) -> ImportJob:
    return ImportJob.objects.select_for_update().select_related("project").get(pk=job_id)


@transaction.atomic
def import_map(*, job: ImportJob, mapping) -> ImportJob:
    """Set the mapping of a job not started yet."""
    job = _job_locked(job.pk)
    if job.status != ImportStatus.UPLOADED:
        raise Conflict(f"This import is {job.get_status_display().lower()}; its mapping can no longer change.")
    job.mapping = mapping_check(
        mapping=mapping, columns=job.columns, label_keys=project_label_keys(project=job.project)
    )
    job.save(update_fields=["mapping"])
    return job


@transaction.atomic
def import_start(*, job: ImportJob, mapping=None) -> ImportJob:
    """Start ingesting (with `mapping` when given, else the job's own); the task runs after commit.
    Starting a job already started changes nothing."""
    job = _job_locked(job.pk)
    if job.status != ImportStatus.UPLOADED:
        return job
    label_keys = project_label_keys(project=job.project)
    job.mapping = mapping_check(
        mapping=job.mapping if mapping is None else mapping, columns=job.columns, label_keys=label_keys
    )
    job.status = ImportStatus.PENDING
    job.save(update_fields=["mapping", "status"])
    enqueue_on_commit(IMPORT_TASK, job.pk)
    return job


def _bump(job_id: int, *, bytes_read: int, **counts) -> None:
    ImportJob.objects.filter(pk=job_id).update(bytes_read=bytes_read, **{k: F(k) + v for k, v in counts.items()})


def _ingest_batch(job: ImportJob, batch: list[tuple[int, dict]]) -> tuple[dict, list[ImportRejection]]:
    """Ingest a batch; rows the validation refuses are taken out (with their reason) and the rest is
    sent again, until what is left goes in."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    rejections = []
    while batch:
        try:
            result = items_ingest(project=job.project, rows=[row for _, row in batch])
        except ValidationFailed as exc:
            bad = {
                e["index"]: e["message"] for e in (exc.fields or {}).get("rows", []) if isinstance(e.get("index"), int)
            }
            if not bad:
                raise
            for i, message in sorted(bad.items()):
                n, row = batch[i]
                rejections.append(ImportRejection(job=job, row=n, external_id=_ext(row), reason=message))
            batch = [entry for i, entry in enumerate(batch) if i not in bad]
            continue
        counts = {"created": result.created, "updated": result.updated, "unchanged": result.unchanged}
        break
    return counts, rejections


def _ext(row) -> str:
    value = row.get("external_id") if isinstance(row, dict) else None
    return "" if value is None else str(value)[:255]


def import_run(*, job_id: int, batch_rows: int = IMPORT_BATCH_ROWS) -> ImportJob | None:
    """Read the job's file and ingest it batch by batch, recording progress after each batch.
    Idempotent: a finished job is left as it is; a job interrupted midway resumes after the rows
    already counted (rows_read), and ingestion is itself idempotent for a batch sent twice."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().filter(pk=job_id).select_related("project").first()
        if job is None or job.status in (ImportStatus.DONE, ImportStatus.FAILED, ImportStatus.UPLOADED):
            return job
        job.status = ImportStatus.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "started_at"])
    skip = job.rows_read
    mapping = job.mapping
    try:
        with default_storage.open(job.file.name, "rb") as stored:
            raw = _Counting(stored)
            batch: list[tuple[int, dict]] = []
            rejections: list[ImportRejection] = []
            read = 0

            def flush():
                nonlocal batch, rejections, read
                counts, more = _ingest_batch(job, batch) if batch else ({}, [])
                rejections.extend(more)
                with transaction.atomic():
                    ImportRejection.objects.bulk_create(rejections)
                    _bump(job.pk, rows_read=read, rejected=len(rejections), bytes_read=raw.count, **counts)
                batch, rejections, read = [], [], 0

            for n, row, reason in rows_read(job.format, raw):
                if n <= skip:
                    continue
                read += 1
                if row is None:
                    rejections.append(ImportRejection(job=job, row=n, reason=reason))
                else:
                    try:
                        batch.append((n, row_map(row, mapping)))
                    except ValueError as exc:
                        ext = _ext({"external_id": row.get(mapping["external_id"])})
                        rejections.append(ImportRejection(job=job, row=n, external_id=ext, reason=str(exc)))
                if read >= batch_rows:
                    flush()
            flush()
    except ValidationFailed as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, error=exc.message, finished_at=timezone.now()
        )
        job.refresh_from_db()
        return job
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.DONE, finished_at=timezone.now(), bytes_read=job.byte_size
    )
    job.refresh_from_db()
    return job


def rejections_csv_lines(*, job: ImportJob) -> Iterator[str]:
    """The rejected rows as CSV text, line by line: row, external_id, reason."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take(values):
        writer.writerow(values)
        line = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return line

    yield take(["row", "external_id", "reason"])
    for r in job.rejections.order_by("row").values_list("row", "external_id", "reason").iterator(chunk_size=2000):
        yield take([r[0], _csv_safe(r[1]), r[2]])


def _csv_safe(value: str) -> str:
    """A cell a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
