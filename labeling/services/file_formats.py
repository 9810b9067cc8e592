"""Reading the rows of an uploaded file (CSV, JSON Lines, a JSON array of objects) one at a time,
and the mapping of its columns to Loupe's item fields: defaults by column name, the check of a
manager's mapping, and one row mapped to an ingestion row. No database; labeling.services.file_import
runs the import job with these."""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections.abc import Iterator

from common.errors import ValidationFailed
from labeling.models import ImportFormat

JSON_ARRAY_MAX_BYTES = 50 * 1024 * 1024
MAX_COLUMNS = 500
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
