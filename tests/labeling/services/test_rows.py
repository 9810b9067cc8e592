"""The shared batch validation (labeling.services.rows) that item ingestion and the ground-truth
import both use: every bad row reported by index, nothing parsed past a bad batch, limits first."""

import pytest
from django.test import override_settings

from common.errors import TooLarge, ValidationFailed
from labeling.services.rows import batch_check, check_batch_size, rows_parse


def _even(i, row):
    if not isinstance(row, int):
        raise ValueError("row must be a number.")
    if row % 2:
        raise ValueError(f"{row} is odd.")
    return (i, row // 2)


def test_a_good_batch_comes_back_parsed_in_order():
    assert rows_parse([4, 0, 2], _even) == [(0, 2), (1, 0), (2, 1)]


def test_every_bad_row_is_listed_and_the_first_is_in_the_message():
    with pytest.raises(ValidationFailed) as caught:
        rows_parse([2, 3, "x", 6, 5], _even)
    exc = caught.value
    assert exc.fields == {
        "rows": [
            {"index": 1, "message": "3 is odd."},
            {"index": 2, "message": "row must be a number."},
            {"index": 4, "message": "5 is odd."},
        ]
    }
    assert str(exc.message) == "3 of 5 rows are invalid; nothing was written. Row 1: 3 is odd."


def test_an_error_other_than_a_bad_row_is_not_collected():
    def broken(i, row):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        rows_parse([1], broken)


def test_the_parser_sees_rows_in_order_so_it_can_find_duplicates():
    seen = {}

    def once(i, row):
        if row in seen:
            raise ValueError(f"{row!r} appears twice (first at row {seen[row]}).")
        seen[row] = i
        return row

    with pytest.raises(ValidationFailed) as caught:
        rows_parse(["a", "b", "a"], once)
    assert caught.value.fields["rows"] == [{"index": 2, "message": "'a' appears twice (first at row 0)."}]


@override_settings(LOUPE_MAX_BATCH_ROWS=3)
def test_the_batch_limits_come_before_any_row():
    check_batch_size([1, 2, 3])
    with pytest.raises(TooLarge) as caught:
        batch_check([1, 2, 3, 4])
    assert "at most 3 rows; this one has 4" in str(caught.value.message)
    with pytest.raises(ValidationFailed) as caught:
        batch_check([])
    assert caught.value.fields == {"rows": [{"index": None, "message": "No rows."}]}
