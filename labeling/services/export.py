"""Labeled-delta export: row encoders (JSON, JSON Lines, CSV; see encode_delta for the formats),
snapshot files built by a task, and export grants. A build that finishes or fails announces
export.finished (common.events) after commit."""

import csv
import gzip
import hashlib
import io
import math
import tempfile
from collections.abc import Iterable, Iterator
from datetime import timedelta
from functools import partial
from json.encoder import encode_basestring as _q  # the C encoder: a str -> a quoted JSON string

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import NotFound, ValidationFailed
from common.events import emit
from labeling.models import Export, ExportFormat, ExportGrant, ExportStatus, Project
from labeling.selectors.export import (
    HistoryPage,
    cursor_decode,
    cursor_encode,
    label_history_bounds,
    label_history_pages,
)

User = get_user_model()

CSV_HEADER = [
    "seq",
    "external_id",
    "label",
    "previous_label",
    "method",
    "score",
    "model_version",
    "annotators",
    "changed_at",
]
CONTENT_TYPES = {
    ExportFormat.JSONL: "application/x-ndjson; charset=utf-8",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
}


# --- encoders ---------------------------------------------------------------------------------


def _json_rows(page) -> list[str]:
    """The rows of a HistoryPage as JSON objects (one string each, no newline)."""
    annotators = page.annotators
    out = []
    append = out.append
    for seq, external_id, label, previous, method, score, model_version, ann, changed_at in page.rows:
        append(
            f'{{"seq":{seq},"external_id":{_q(external_id)},"label":{_q(label)},'
            f'"previous_label":{_q(previous) if previous else "null"},"method":{_q(method)},'
            f'"score":{"null" if score is None or not math.isfinite(score) else repr(score)},'
            + (f'"model_version":{_q(model_version)},' if model_version else "")
            + f'"annotators":{annotators[ann].json},"changed_at":"{changed_at}"}}'
        )
    return out


def _csv_page(page) -> str:
    buf = io.StringIO()
    annotators = page.annotators
    # Text always quoted, numbers bare: a field starting with "#" can never look like the trailer.
    writer = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerows(
        (
            seq,
            ext,
            label,
            prev,
            method,
            None if score is None or not math.isfinite(score) else score,
            mv,
            annotators[ann].csv,
            at,
        )
        for seq, ext, label, prev, method, score, mv, ann, at in page.rows
    )
    return buf.getvalue()


def csv_trailer(next_cursor: str, rows: int) -> str:
    return f"#next_cursor={next_cursor};rows={rows}\r\n"


def jsonl_trailer(next_cursor: str, rows: int) -> str:
    return f'{{"next_cursor":"{next_cursor}","rows":{rows}}}\n'


# Characters that Python's str.splitlines() (and JavaScript) treat as line breaks although JSON allows
# them raw inside strings: escaped, so that one JSON Lines record is always exactly one line.
_LINE_SEPARATORS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _safe_lines(text: str) -> str:
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        return text.translate(_LINE_SEPARATORS)
    return text


def encode_delta(
    *, fmt: str, pages: Iterable[HistoryPage], next_cursor: str, has_more: bool = False
) -> Iterator[bytes]:
    """The bytes of a delta in `fmt`, one chunk per page (plus header and trailer). One row per label
    change, in seq order:

    - JSON Lines: one JSON object per line; the LAST line is the trailer
      `{"next_cursor": "<cursor>", "rows": <n>}` (the only line without "seq"). No trailer means the
      stream was cut: keep your old cursor.
    - CSV: RFC 4180 (CRLF, UTF-8, a header row; every text field quoted, numbers bare, an empty score
      is ""); `annotators` are usernames joined by ";" (Django usernames cannot contain ";"). The LAST
      line is the unquoted one-field record `#next_cursor=<cursor>;rows=<n>`, the only line starting
      with "#" (pandas: `read_csv(..., comment="#")` skips it).
    - JSON: `{"results": [...], "next_cursor": "...", "has_more": bool}` (API pages; snapshots write
      the same object with every row of the range).

    Row keys: seq, external_id, label, previous_label (null for the first label), method, score,
    model_version (JSON only when set), annotators (usernames), changed_at (ISO 8601 UTC).

    A retraction row: label is empty ("") and method is `retracted` when a decision was withdrawn
    (a reviewer's undo; previous_label is the withdrawn label): drop the item. A compact delta keeps
    it as the item's last change in the range."""
    n = 0
    if fmt == ExportFormat.CSV:
        buf = io.StringIO()
        csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC).writerow(CSV_HEADER)
        yield buf.getvalue().encode()
        for page in pages:
            n += len(page)
            yield _csv_page(page).encode()
        yield csv_trailer(next_cursor, n).encode()
    elif fmt == ExportFormat.JSONL:
        for page in pages:
            n += len(page)
            yield _safe_lines("\n".join(_json_rows(page)) + "\n").encode()
        yield jsonl_trailer(next_cursor, n).encode()
    elif fmt == ExportFormat.JSON:
        yield b'{"results":['
        first = True
        for page in pages:
            n += len(page)
            yield _safe_lines(("" if first else ",") + ",".join(_json_rows(page))).encode()
            first = False
        yield f'],"next_cursor":"{next_cursor}","has_more":{"true" if has_more else "false"}}}'.encode()
    else:  # pragma: no cover - callers validate the format
        raise ValueError(fmt)


# --- snapshots --------------------------------------------------------------------------------


def _validate_format(fmt):
    if fmt not in ExportFormat.values:
        raise ValidationFailed(
            f"format must be one of {', '.join(ExportFormat.values)}.", fields={"format": ["Invalid choice."]}
        )


def export_request(
    *, project: Project, actor, format: str = ExportFormat.JSONL, since: str | None = "0", compact: bool = False
) -> tuple[Export, bool]:
    """Ask for a snapshot file of the changes after `since` up to now. Returns (export, created).

    The range is fixed here; building happens in a Celery task after commit. Asking again for the same
    range, format and compaction while an earlier export of it is not failed returns that export."""
    _validate_format(format)
    since_seq = cursor_decode(since, project_id=project.pk)
    with transaction.atomic():
        bounds = label_history_bounds(project_id=project.pk, since=since_seq, compact=compact)
        existing = (
            Export.objects.filter(
                project=project, format=format, compact=compact, since_seq=bounds.since, until_seq=bounds.until
            )
            .exclude(status=ExportStatus.FAILED)
            .order_by("-id")
            .first()
        )
        if existing is not None:
            return existing, False
        export = Export.objects.create(
            project=project,
            requested_by=actor if actor and actor.is_authenticated else None,
            format=format,
            compact=compact,
            since_seq=bounds.since,
            until_seq=bounds.until,
        )
        from labeling.services.work import enqueue_on_commit

        # The pending export is the record: if the broker is down, the work sweep sends it later.
        enqueue_on_commit("loupe.export_build", export.pk, record=False)
    return export, True


def export_file_name(export: Export) -> str:
    return f"exports/project-{export.project_id}/export-{export.pk}-{export.since_seq}-{export.until_seq}.{export.format}.gz"


@transaction.atomic
def _export_claim(*, export_id: int) -> Export | None:
    export = Export.objects.select_for_update().filter(pk=export_id).first()
    if export is None or export.status == ExportStatus.DONE:
        return None
    now = timezone.now()
    alive_since = now - timedelta(seconds=settings.LOUPE_HEARTBEAT_STALE_SECONDS)
    if export.status == ExportStatus.RUNNING and (export.heartbeat_at or export.started_at or now) > alive_since:
        return None  # another worker is building it (its heartbeat is fresh)
    export.status, export.started_at, export.heartbeat_at, export.error = ExportStatus.RUNNING, now, now, ""
    export.attempts += 1
    export.save(update_fields=["status", "started_at", "heartbeat_at", "error", "attempts"])
    return export


def _write_gzip(export: Export, out) -> int:
    """Stream the export's rows into `out` as deterministic gzip (same rows -> same bytes)."""
    rows = 0
    pages = label_history_pages(
        project_id=export.project_id, since=export.since_seq, until=export.until_seq, compact=export.compact
    )

    def counted():
        nonlocal rows
        for page in pages:
            rows += len(page)
            yield page

    next_cursor = cursor_encode(project_id=export.project_id, seq=export.until_seq)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0, filename="") as gz:
        for chunk in encode_delta(fmt=export.format, pages=counted(), next_cursor=next_cursor):
            gz.write(chunk)
    return rows


def export_file_build(*, export_id: int) -> Export | None:
    """Build the snapshot file of one export (idempotent: a done export is left alone; a rebuild writes
    the same bytes to the same name). Not one transaction: the rows are read in keyset pages."""
    export = _export_claim(export_id=export_id)
    if export is None:
        return None
    from labeling.services.work import Heartbeat

    # The heartbeat tells the work sweep this build is alive (see labeling.services.work).
    with Heartbeat(Export, export.pk, export.attempts):
        return _export_build(export)


def _export_build(export: Export) -> Export | None:
    export_id, attempt = export.pk, export.attempts
    name = export_file_name(export)
    try:
        with tempfile.TemporaryFile() as tmp:
            rows = _write_gzip(export, tmp)
            size = tmp.tell()
            tmp.seek(0)
            digest = hashlib.sha256()
            for block in iter(lambda: tmp.read(1 << 20), b""):
                digest.update(block)
            tmp.seek(0)
            if default_storage.exists(name):
                default_storage.delete(name)  # an earlier attempt's file: same name, same bytes
            stored = default_storage.save(name, File(tmp, name=name))
    except Exception as exc:
        _export_fail(export_id=export_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
        raise
    return _export_finish(
        export_id=export_id, attempt=attempt, file_name=stored, rows=rows, size=size, sha256=digest.hexdigest()
    )


@transaction.atomic
def _export_finish(*, export_id, attempt, file_name, rows, size, sha256) -> Export | None:
    export = Export.objects.select_for_update().filter(pk=export_id).first()
    if export is None or export.status != ExportStatus.RUNNING or export.attempts != attempt:
        # Another worker took this build over. Our file under the export's own name holds the same bytes
        # as theirs (the range is fixed), so it stays; a copy the storage had to rename, or the file of
        # an export deleted meanwhile, goes.
        if export is None or file_name != export_file_name(export):
            transaction.on_commit(partial(default_storage.delete, file_name))
        return export
    export.status, export.file_name, export.row_count = ExportStatus.DONE, file_name, rows
    export.byte_size, export.sha256, export.finished_at = size, sha256, timezone.now()
    export.save(update_fields=["status", "file_name", "row_count", "byte_size", "sha256", "finished_at"])
    _announce_finished(export=export)
    return export


@transaction.atomic
def _export_fail(*, export_id, attempt, error) -> None:
    failed = Export.objects.filter(pk=export_id, status=ExportStatus.RUNNING, attempts=attempt).update(
        status=ExportStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )
    if failed:
        _announce_finished(export=Export.objects.get(pk=export_id))


def _announce_finished(*, export: Export) -> None:
    """export.finished (common.events), sent after the export's final state commits."""
    if export.status == ExportStatus.DONE:
        subject = f"Export #{export.pk} done: {export.row_count:,} rows ({export.format})"
    else:
        subject = f"Export #{export.pk} failed: {(export.error.splitlines() or [''])[0]}"[:300]
    emit(
        project_id=export.project_id,
        type="export.finished",
        subject=subject,
        data={
            "export_id": export.pk,
            "status": str(export.status),
            "rows": export.row_count if export.status == ExportStatus.DONE else None,
            "format": str(export.format),
            "compact": export.compact,
            "since_seq": export.since_seq,
            "until_seq": export.until_seq,
            "byte_size": export.byte_size if export.status == ExportStatus.DONE else None,
            "error": export.error,
        },
        path=f"/projects/{export.project_id}/export",
        key=f"export:{export.pk}",
    )


def exports_recover(*, now=None, sender=None) -> dict:
    """Periodic sweep (labeling.services.work): a build whose heartbeat stopped goes back to pending and
    is sent again (failed after LOUPE_WORK_MAX_ATTEMPTS); a pending export nobody picked up is sent again."""
    from labeling.services.work import work_recover

    return work_recover(
        model=Export,
        task="loupe.export_build",
        queued=ExportStatus.PENDING,
        running=ExportStatus.RUNNING,
        failed=ExportStatus.FAILED,
        now=now,
        sender=sender,
        what="export",
    )


# --- export grants ----------------------------------------------------------------------------


@transaction.atomic
def export_grant_add(*, project: Project, username: str, actor) -> tuple[ExportGrant, bool]:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ValidationFailed(f"No user named {username!r}.", fields={"username": ["Unknown user."]})
    try:
        with transaction.atomic():
            grant, created = ExportGrant.objects.get_or_create(
                project=project, user=user, defaults={"granted_by": actor}
            )
    except IntegrityError:  # a concurrent grant of the same user won
        grant, created = ExportGrant.objects.get(project=project, user=user), False
    return grant, created


@transaction.atomic
def export_grant_remove(*, project: Project, username: str) -> None:
    deleted, _ = ExportGrant.objects.filter(project=project, user__username=username).delete()
    if not deleted:
        raise NotFound(f"{username!r} has no export grant in this project.")
