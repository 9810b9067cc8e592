"""Reading a batch body (a JSON array, or JSON Lines with Content-Type application/x-ndjson)
within the row and byte limits, answering 413 with the limit when it is exceeded."""

import json
import re

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from labeling.errors import TooLarge, ValidationFailed

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-lines")


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


# orjson reads an integer beyond 64 bits as a float, losing digits. Such an integer has at least 19
# digits in a row, so a body with no run of 19 digits (anywhere, strings included) is safe for it.
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")


def json_loads(data: bytes):
    """orjson when it is exact (several times faster); the standard library when the body may hold a
    very large integer, and for its error messages. NaN and Infinity are refused either way."""
    if not _LONG_DIGIT_RUN.search(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data, parse_constant=_reject_constant)


def _too_large():
    limit = settings.LOUPE_MAX_BATCH_BYTES
    return TooLarge(f"A batch body holds at most {limit // (1024 * 1024)} MB ({limit:,} bytes). Split it.")


def read_batch(request) -> list:
    limit = settings.LOUPE_MAX_BATCH_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise _too_large()
    try:
        body = request.body
    except RequestDataTooBig:
        raise _too_large()
    if len(body) > limit:
        raise _too_large()
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type in NDJSON_TYPES:
        rows, errors = [], []
        for lineno, line in enumerate(body.splitlines()):
            if not line.strip():
                continue
            try:
                rows.append(json_loads(line))
            except ValueError as exc:
                errors.append({"index": len(rows) + len(errors), "line": lineno + 1, "message": f"not valid JSON: {exc}"})
        if errors:
            raise ValidationFailed(
                f"{len(errors)} lines are not valid JSON; nothing was written.", code="parse_error", fields={"rows": errors}
            )
        return rows
    if content_type not in ("application/json", ""):
        raise ValidationFailed(
            f"Unsupported Content-Type {content_type!r}: send application/json (an array) or application/x-ndjson.",
            code="unsupported_media_type",
        )
    try:
        data = json_loads(body or b"null")
    except ValueError as exc:
        raise ValidationFailed(f"The body is not valid JSON: {exc}", code="parse_error")
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise ValidationFailed("The body must be a JSON array of rows (or JSON Lines).", code="invalid")
    return data
