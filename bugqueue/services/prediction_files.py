"""Evaluate a model version from an uploaded predictions file (the models page): JSON Lines, one
{"external_id", "label", "probabilities"?} object a line, or CSV with a header naming external_id,
label and optionally probabilities (a JSON object in the cell). The file becomes prediction rows,
which go through the same predictions_parse and evaluation_run as the API. Every bad row is
reported with its line number and nothing is evaluated."""

import csv
import io
import json

from django.db import transaction

from bugqueue.services.evaluations import evaluation_run, predictions_parse
from common.errors import TooLarge, ValidationFailed
from labeling.services.registry import model_ensure

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ERRORS = 1000
FORMATS = ("jsonl", "csv")


class FileRows:
    """Rows parsed from a file, with the line each came from (1-based)."""

    def __init__(self, rows, lines):
        self.rows = rows
        self.lines = lines


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"The file is not UTF-8 text (byte {exc.start}).", code="parse_error", fields={"file": ["Not UTF-8."]}
        )


def detect_format(name: str, text: str) -> str:
    lower = (name or "").lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _raise_rows(errors):
    first = errors[0]
    raise ValidationFailed(
        f"Invalid predictions file; nothing was evaluated. Line {first['line']}: {first['message']}",
        code="parse_error",
        fields={"rows": errors},
    )


def rows_from_jsonl(text: str) -> FileRows:
    rows, lines, errors = [], [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            if len(errors) < MAX_ERRORS:
                errors.append({"line": lineno, "message": f"not JSON ({exc.msg})."})
            continue
        rows.append(row)
        lines.append(lineno)
    if errors:
        _raise_rows(errors)
    return FileRows(rows, lines)


def rows_from_csv(text: str) -> FileRows:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationFailed("The file is empty.", code="parse_error", fields={"file": ["Empty."]})
    except csv.Error as exc:
        raise ValidationFailed(f"Line 1 is not CSV: {exc}", code="parse_error", fields={"file": [str(exc)]})
    columns = [h.strip().lower() for h in header]
    missing = [c for c in ("external_id", "label") if c not in columns]
    if missing:
        raise ValidationFailed(
            f"The CSV header must name external_id and label (missing: {', '.join(missing)}); "
            "probabilities (a JSON object) is optional.",
            code="parse_error",
            fields={"file": [f"Missing column {c}." for c in missing]},
        )
    at = {c: columns.index(c) for c in ("external_id", "label", "probabilities") if c in columns}
    rows, lines, errors = [], [], []
    try:
        for cells in reader:
            lineno = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) < len(columns):
                cells = cells + [""] * (len(columns) - len(cells))
            row = {"external_id": cells[at["external_id"]].strip(), "label": cells[at["label"]].strip()}
            raw = cells[at["probabilities"]].strip() if "probabilities" in at else ""
            if raw:
                try:
                    row["probabilities"] = json.loads(raw)
                except ValueError:
                    if len(errors) < MAX_ERRORS:
                        errors.append({"line": lineno, "message": "probabilities is not a JSON object."})
                    continue
            rows.append(row)
            lines.append(lineno)
    except csv.Error as exc:
        errors.append({"line": reader.line_num, "message": f"not CSV ({exc})."})
    if errors:
        _raise_rows(errors)
    return FileRows(rows, lines)


def rows_from_file(*, name: str, data: bytes, fmt: str = "") -> FileRows:
    """The prediction rows of a file's bytes; `fmt` (jsonl or csv) or guessed from the name and content."""
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge(f"A predictions file holds at most {MAX_FILE_BYTES // (1024 * 1024)} MB here.")
    text = _text(data)
    if not text.strip():
        raise ValidationFailed("The file is empty.", code="parse_error", fields={"file": ["Empty."]})
    fmt = fmt or detect_format(name, text)
    if fmt not in FORMATS:
        raise ValidationFailed("format must be jsonl or csv.", fields={"format": ["Invalid choice."]})
    return rows_from_jsonl(text) if fmt == "jsonl" else rows_from_csv(text)


@transaction.atomic
def evaluation_from_file(
    *, project, actor, model_version: str, name: str, data: bytes, fmt: str = "", dataset_ids=None
):
    """Register `model_version` if it is new, then evaluate it on the file's predictions (all or nothing)."""
    model_ensure(project=project, version=model_version, actor=actor)
    parsed = rows_from_file(name=name, data=data, fmt=fmt)
    try:
        batch = predictions_parse(project=project, rows=parsed.rows)
    except ValidationFailed as exc:
        rows = (exc.fields or {}).get("rows") if isinstance(exc.fields, dict) else None
        if not rows:
            raise
        errors = [
            {"line": parsed.lines[e["index"]] if 0 <= e.get("index", -1) < len(parsed.lines) else None, **e}
            for e in rows
        ]
        _raise_rows(errors)
    return evaluation_run(
        project=project, actor=actor, model_version=model_version, batch=batch, dataset_ids=dataset_ids or None
    )
