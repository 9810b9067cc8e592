"""Reading a batch body (a JSON array, or JSON Lines with Content-Type application/x-ndjson)
within the row and byte limits, answering 413 with the limit when it is exceeded."""

from django.core.exceptions import RequestDataTooBig

from common.api.json_body import JSONInputError, json_loads
from common.errors import TooLarge, ValidationFailed
from common.http.request_body import BATCH

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-lines")


def _too_large():
    return TooLarge(BATCH.message())


def read_batch(request) -> list:
    """The body's rows. The limits and the JSON rules are the shared ones (common.http.request_body,
    common.api.json_body); a bad row is named by its index and line."""
    limit = BATCH.bytes()
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
                what = "refused" if isinstance(exc, JSONInputError) else "not valid JSON"
                errors.append({"index": len(rows) + len(errors), "line": lineno + 1, "message": f"{what}: {exc}"})
        if errors:
            first = errors[0]
            raise ValidationFailed(
                f"{len(errors)} lines cannot be read; nothing was written. Line {first['line']}: {first['message']}",
                code="parse_error",
                fields={"rows": errors},
            )
        return rows
    if content_type not in ("application/json", ""):
        raise ValidationFailed(
            f"Unsupported Content-Type {content_type!r}: send application/json (an array) or application/x-ndjson.",
            code="unsupported_media_type",
        )
    try:
        data = json_loads(body or b"null")
    except JSONInputError as exc:
        rows = None if exc.row is None else {"rows": [{"index": exc.row, "message": str(exc)}]}
        raise ValidationFailed(f"The body is not JSON Loupe accepts: {exc}", code="parse_error", fields=rows)
    except ValueError as exc:
        raise ValidationFailed(f"The body is not valid JSON: {exc}", code="parse_error")
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise ValidationFailed("The body must be a JSON array of rows (or JSON Lines).", code="invalid")
    return data
