"""Importing items from an uploaded file: CSV, JSON Lines, or a JSON array of objects.

The file is stored first (Django storage; Django's upload handlers have already spooled a large
upload to a temporary file, and storage copies it in chunks). Its first rows give the columns, a
preview and a default mapping by column name; the manager adjusts the mapping; a task then reads the
file row by row and sends batches of IMPORT_BATCH_ROWS through labeling.services.ingestion.items_ingest,
the same validation and idempotent upsert as the API. A batch that fails validation is not lost: its
bad rows are recorded (row number and reason) and the rest of the batch goes in.

CSV and JSON Lines are streamed. A JSON array is parsed whole (no streaming JSON parser is installed),
so it is refused above JSON_ARRAY_MAX_BYTES: such a file should be sent as JSON Lines.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections.abc import Iterator

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.errors import Conflict, ValidationFailed
from labeling.models import ImportFormat, ImportJob, ImportRejection, ImportStatus, Project
from labeling.selectors.projects import project_label_keys
from labeling.services.ingestion import items_ingest
from labeling.services.work import enqueue_on_commit

IMPORT_BATCH_ROWS = 2000
IMPORT_MAX_BYTES = 2 * 2**30  # an upload's size limit (it is spooled to disk, never held in memory)
PREVIEW_ROWS = 10
JSON_ARRAY_MAX_BYTES = 50 * 1024 * 1024
MAX_COLUMNS = 500
IMPORT_TASK = "loupe.file_import_run"  # labeling.tasks.file_import_run

csv.field_size_limit(16 * 1024 * 1024)
NUL_REASON = "row holds a NUL character, which is not text."

MAPPING_FIELDS = ("external_id", "text", "priority", "label", "model_version", "predicted_at")
DEFAULT_NAMES = {
    "external_id": ("external_id", "externalid", "ext_id", "id", "item_id", "key", "uid"),
    "text": ("text", "content", "body", "message", "sentence", "document"),
    "priority": ("priority", "prio"),
    "label": ("prediction", "predicted_label", "prediction_label", "pred_label", "predicted", "label"),
    "model_version": ("model_version", "model", "version"),
    "predicted_at": ("predicted_at", "prediction_time", "predicted_time", "timestamp", "created_at"),
}
PROBABILITY_NAMES = ("probabilities", "probs", "scores", "prediction_probabilities", "proba")
PROB_PREFIXES = ("prob_", "p_", "proba_", "probability_")


# --- reading ----------------------------------------------------------------------------------


def format_detect(name: str, head: bytes) -> str:
    """The format of an upload, by extension, else by its first bytes."""
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return ImportFormat.JSONL
    if lower.endswith(".json"):
        return ImportFormat.JSON
    if lower.endswith((".csv", ".tsv", ".txt")):
        return ImportFormat.CSV
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    if text.startswith(b"["):
        return ImportFormat.JSON
    if text.startswith(b"{"):
        return ImportFormat.JSONL
    return ImportFormat.CSV


class _Counting(io.RawIOBase):
    """A binary file that counts the bytes read from it (the job's progress)."""

    def __init__(self, raw):
        self.raw, self.count = raw, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def rows_read(fmt: str, raw) -> Iterator[tuple[int, dict | None, str]]:
    """(row number, row or None, reason when None) for every data row of a binary file, in order.
    Row 1 is the first data row (after a CSV's header). Only a JSON array is held whole."""
    if not isinstance(raw, _Counting):
        raw = _Counting(raw)
    text = io.TextIOWrapper(io.BufferedReader(raw, 256 * 1024), encoding="utf-8-sig", newline="", errors="strict")
    try:
        if fmt == ImportFormat.CSV:
            yield from _csv_rows(text)
        elif fmt == ImportFormat.JSONL:
            yield from _jsonl_rows(text)
        else:
            yield from _json_array_rows(text)
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"The file is not UTF-8 text ({exc.reason} at byte {exc.start}).")


def _csv_rows(text):
    first = text.readline()
    dialect = csv.excel_tab if "\t" in first and "," not in first else csv.excel
    if "\0" in first:
        raise ValidationFailed("The CSV header holds a NUL character, which is not text.")
    reader = csv.reader(_chain(first, text), dialect)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ValidationFailed(f"The CSV header cannot be read: {exc}.")
    if not header or not any(h.strip() for h in header):
        raise ValidationFailed("The CSV file has no header row.")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise ValidationFailed(f"The CSV header names a column twice: {', '.join(dup)}.")
    n = 0
    try:
        for record in reader:
            if not record or record == [""]:
                continue
            n += 1
            if any("\0" in value for value in record):
                yield n, None, NUL_REASON
                continue
            if len(record) > len(header):
                yield n, None, f"row has {len(record)} values, the header {len(header)} columns."
                continue
            yield n, dict(zip(header, record + [""] * (len(header) - len(record)), strict=True)), ""
    except csv.Error as exc:
        raise ValidationFailed(f"The CSV file cannot be read after row {n}: {exc}.")


def _chain(first: str, rest) -> Iterator[str]:
    yield first
    yield from rest


def _jsonl_rows(text):
    n = 0
    for line in text:
        if not line.strip():
            continue
        n += 1
        if "\0" in line or "\\u0000" in line:
            yield n, None, NUL_REASON
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            yield n, None, f"not JSON ({getattr(exc, 'msg', exc)} at column {getattr(exc, 'colno', '?')})."
            continue
        except RecursionError:
            yield n, None, "JSON nested too deeply."
            continue
        if not isinstance(row, dict):
            yield n, None, "line is not a JSON object."
            continue
        yield n, row, ""


def _json_array_rows(text):
    data = text.read(JSON_ARRAY_MAX_BYTES + 1)
    if len(data.encode()) > JSON_ARRAY_MAX_BYTES:
        raise ValidationFailed(
            f"A JSON array file holds at most {JSON_ARRAY_MAX_BYTES // 2**20} MB (it is read whole); "
            "send a larger file as JSON Lines (one object per line) or CSV."
        )
    try:
        rows = json.loads(data)
    except ValueError as exc:
        raise ValidationFailed(
            f"The file is not valid JSON ({getattr(exc, 'msg', exc)} at line {getattr(exc, 'lineno', '?')})."
        )
    except RecursionError:
        raise ValidationFailed("The file's JSON is nested too deeply.")
    del data
    if not isinstance(rows, list):
        raise ValidationFailed("A JSON file must hold an array of objects.")
    for n, row in enumerate(rows, 1):
        if isinstance(row, dict) and "\\u0000" in json.dumps(row):
            yield n, None, NUL_REASON
        elif isinstance(row, dict):
            yield n, row, ""
        else:
            yield n, None, "element is not a JSON object."


# --- mapping ----------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def mapping_default(*, columns: list[str], label_keys: list[str]) -> dict:
    """A mapping guessed from the column names; every other column is kept in the payload."""
    by_norm = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    mapping: dict = dict.fromkeys(MAPPING_FIELDS)
    used = set()
    for field in ("external_id", "text", "priority", "model_version", "predicted_at", "label"):
        for name in DEFAULT_NAMES[field]:
            col = by_norm.get(name)
            if col and col not in used:
                mapping[field] = col
                used.add(col)
                break
    probabilities = next((by_norm[n] for n in PROBABILITY_NAMES if n in by_norm and by_norm[n] not in used), None)
    prob_columns = {}
    if probabilities is None:
        for key in label_keys:
            for prefix in PROB_PREFIXES:
                col = by_norm.get(_norm(prefix + key))
                if col and col not in used:
                    prob_columns[key] = col
                    break
    if probabilities:
        used.add(probabilities)
    used.update(prob_columns.values())
    mapping["probabilities"] = probabilities
    mapping["prob_columns"] = prob_columns if len(prob_columns) == len(label_keys) else {}
    if not mapping["prob_columns"]:
        used.difference_update(prob_columns.values())
    mapping["payload"] = [c for c in columns if c not in used]
    mapping["model_version_default"] = ""
    return mapping


def mapping_check(*, mapping, columns: list[str], label_keys: list[str]) -> dict:
    """The mapping normalised, or ValidationFailed naming each bad field. Unknown columns are refused."""
    if not isinstance(mapping, dict):
        raise ValidationFailed("mapping must be an object.", fields={"mapping": ["Expected an object."]})
    known = set(columns)
    errors: dict[str, list[str]] = {}
    out: dict = {}
    allowed = set(MAPPING_FIELDS) | {"payload", "probabilities", "prob_columns", "model_version_default"}
    for key in set(mapping) - allowed:
        errors[f"mapping.{key}"] = ["Unknown mapping field."]

    def column(field):
        value = mapping.get(field)
        if value in (None, ""):
            return None
        if not isinstance(value, str) or value not in known:
            errors[f"mapping.{field}"] = [f"{value!r} is not a column of the file."]
            return None
        return value

    for field in (*MAPPING_FIELDS, "probabilities"):
        out[field] = column(field)
    payload = mapping.get("payload") or []
    if not isinstance(payload, list) or not all(isinstance(c, str) and c in known for c in payload):
        errors["mapping.payload"] = ["A list of columns of the file."]
        payload = []
    out["payload"] = list(dict.fromkeys(payload))
    prob_columns = mapping.get("prob_columns") or {}
    if not isinstance(prob_columns, dict) or not all(
        isinstance(c, str) and c in known and k in label_keys for k, c in prob_columns.items()
    ):
        errors["mapping.prob_columns"] = ["An object {label key: column of the file}."]
        prob_columns = {}
    elif prob_columns and set(prob_columns) != set(label_keys):
        errors["mapping.prob_columns"] = [f"Name one column for each label: {', '.join(label_keys)}."]
    out["prob_columns"] = prob_columns
    if out["probabilities"] and prob_columns:
        errors["mapping.probabilities"] = ["Either one column of probabilities or one column per label, not both."]
    mv = mapping.get("model_version_default") or ""
    if not isinstance(mv, str) or len(mv) > 128:
        errors["mapping.model_version_default"] = ["A string of at most 128 characters."]
        mv = ""
    out["model_version_default"] = mv.strip()
    if not out["external_id"]:
        errors.setdefault("mapping.external_id", ["Choose the column that holds each item's external id."])
    if not out["text"] and not out["payload"]:
        errors.setdefault("mapping.payload", ["Choose a text column or at least one payload column."])
    if errors:
        raise ValidationFailed(f"The mapping is not usable: {next(iter(errors.values()))[0]}", fields=errors)
    return out


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number.")
    if isinstance(value, (int, float)):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"{what} must be a number, not {str(value)[:40]!r}.")
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number.")
    return number


def row_map(row: dict, mapping: dict) -> dict:
    """One file row as an ingestion row {external_id, payload, priority?, prediction?}; ValueError with
    the reason when a mapped value cannot be converted (the ingestion service judges the rest)."""
    ext = row.get(mapping["external_id"])
    if isinstance(ext, str):
        ext = ext.strip()
    if isinstance(ext, float) and ext.is_integer():
        ext = int(ext)
    out: dict = {"external_id": ext}
    payload = {c: row.get(c) for c in mapping["payload"] if c in row}
    if mapping["text"]:
        payload["text"] = row.get(mapping["text"])
    out["payload"] = payload
    if mapping["priority"] and not _blank(row.get(mapping["priority"])):
        p = _number(row[mapping["priority"]], "priority")
        if not float(p).is_integer():
            raise ValueError("priority must be an integer.")
        out["priority"] = int(p)
    label = row.get(mapping["label"]) if mapping["label"] else None
    if not _blank(label):
        label = label.strip() if isinstance(label, str) else label
        mv = row.get(mapping["model_version"]) if mapping["model_version"] else None
        mv = mapping["model_version_default"] if _blank(mv) else mv
        if _blank(mv):
            raise ValueError("the row has a prediction but no model version.")
        pred = {"model_version": str(mv).strip(), "label": label}
        if mapping["probabilities"]:
            probs = row.get(mapping["probabilities"])
            if isinstance(probs, str) and probs.strip():
                try:
                    probs = json.loads(probs)
                except ValueError:
                    raise ValueError(f"{mapping['probabilities']} is not a JSON object of probabilities.")
            if not _blank(probs):
                pred["probabilities"] = probs
        elif mapping["prob_columns"]:
            values = {k: row.get(c) for k, c in mapping["prob_columns"].items()}
            if not all(_blank(v) for v in values.values()):
                pred["probabilities"] = {k: _number(v, f"probability of {k}") for k, v in values.items()}
        if mapping["predicted_at"] and not _blank(row.get(mapping["predicted_at"])):
            pred["predicted_at"] = row[mapping["predicted_at"]]
        out["prediction"] = pred
    return out


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
