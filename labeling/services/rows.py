"""Validating a batch of rows as a whole (item ingestion, ground-truth import).

Each row is parsed by a function that raises ValueError with the reason; every bad row is
collected and one ValidationFailed (400) names them all by index, so nothing of a bad batch is
written. The batch limits are checked before any row is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

from common.errors import TooLarge, ValidationFailed

T = TypeVar("T")


def check_batch_size(rows: list) -> None:
    """TooLarge (413) when the batch holds more rows than LOUPE_MAX_BATCH_ROWS."""
    limit = settings.LOUPE_MAX_BATCH_ROWS
    if len(rows) > limit:
        raise TooLarge(f"A batch holds at most {limit:,} rows; this one has {len(rows):,}. Split it.")


def batch_check(rows: list) -> None:
    """The batch as a whole: not too large (413), not empty (400)."""
    check_batch_size(rows)
    if not rows:
        raise ValidationFailed("The batch is empty.", fields={"rows": [{"index": None, "message": "No rows."}]})


def rows_parse(rows: list, parse_row: Callable[[int, object], T]) -> list[T]:
    """`parse_row(index, row)` for every row, in order. When any raised ValueError: ValidationFailed
    listing every bad row as {"index", "message"} under fields["rows"], the first one in the message."""
    parsed, errors = [], []
    for i, row in enumerate(rows):
        try:
            parsed.append(parse_row(i, row))
        except ValueError as exc:
            errors.append({"index": i, "message": str(exc)})
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"{len(errors)} of {len(rows)} rows are invalid; nothing was written. Row {first['index']}: {first['message']}",
            fields={"rows": errors},
        )
    return parsed
