"""common.db.copy's binary COPY: what NumPy builds is what PostgreSQL stores."""

import numpy as np
import pytest
from django.db import connection

from common.db.copy import copy_arrays, copy_binary_payload


def test_copy_payload_rejects_a_text_code_outside_its_choices():
    with pytest.raises(ValueError, match="outside"):
        copy_binary_payload([("int8", np.arange(2)), ("text", (np.array([0, 2]), ["a", "b"]))])


def test_copy_arrays_numbers_and_text_from_choices(postgres):
    ids = np.arange(1, 8, dtype=np.int64)
    label = (np.array([2, 0, 1, 2, 2, 0, 1]), ["cat", "", "ünïcode label"])  # an empty text, a multi-byte one
    outcome = (np.array([1, 1, 0, 1, 0, 0, 1]), ["accepted", "review"])
    score = np.array([0.5, np.nan, 1.0, -2.5, 0.0, 3.25, 7.0])
    small = np.array([3, 4, 5, 0, 1, 2, 32767], dtype=np.int16)
    flag = np.array([True, False, True, True, False, False, True])
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE copied (id bigint, label varchar(64), score float8, n smallint, flag bool, outcome text)"
        )
    copy_arrays(
        "copied",
        {
            "id": ("int8", ids),
            "label": ("text", label),
            "score": ("float8", score),
            "n": ("int2", small),
            "flag": ("bool", flag),
            "outcome": ("text", outcome),
        },
    )
    with connection.cursor() as cur:
        cur.execute("SELECT id, label, score, n, flag, outcome FROM copied ORDER BY id")
        rows = cur.fetchall()
    assert [r[0] for r in rows] == ids.tolist()
    assert [r[1] for r in rows] == [label[1][c] for c in label[0]]
    assert np.array_equal(np.array([r[2] for r in rows]), score, equal_nan=True)
    assert [r[3] for r in rows] == small.tolist()
    assert [r[4] for r in rows] == flag.tolist()
    assert [r[5] for r in rows] == [outcome[1][c] for c in outcome[0]]


def test_copy_arrays_no_rows(postgres):
    with connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE copied (id bigint, label text)")
    copy_arrays(
        "copied", {"id": ("int8", np.zeros(0, dtype=np.int64)), "label": ("text", (np.zeros(0, dtype=int), ["a"]))}
    )
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM copied")
        assert cur.fetchone()[0] == 0
