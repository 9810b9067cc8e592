"""The rows an evaluation reads and writes, in bulk and as NumPy arrays: a dataset version's members
with their frozen labels, bugs and slice values; a model's stored predictions on them; the
project items named by uploaded external_ids; and the predictions an evaluation keeps.

Raw SQL: a version's members are read in one statement with a hash of every slice field's payload
value (`payload ->> key` per field) beside them, and stored predictions are joined to the
members in the database, because the ORM would fetch a million Python tuples (or send ids in
thousands of IN lists) where one columnar read does. On PostgreSQL the uploaded external_ids are
COPYed into a temporary table and joined to the items, and predictions are written with a binary COPY.
"""

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bugqueue.models import DatasetMember, EvaluationPrediction
from common.db import is_postgres, sql
from common.db.columns import label_case, read_columns
from common.db.copy import copy_arrays, temp_table_from_arrays
from labeling.models import Item, Prediction


@dataclass
class Members:
    """One dataset version: per member its item id, label code (-1: not a label of the project), bug
    id (-1: none) and, per slice field, a key of its payload value (equal values, compared as text,
    have equal keys; -1 when the key is missing or null)."""

    item_ids: np.ndarray
    truth: np.ndarray
    bugs: np.ndarray
    values: dict


def _at_version(alias: str = "m") -> str:
    return (
        f"{alias}.dataset_id = %s AND {alias}.added_in <= %s "
        f"AND ({alias}.removed_in IS NULL OR {alias}.removed_in > %s)"
    )


def members_read(*, dataset_id: int, number: int, keys: list, fields: list) -> Members:
    """The members of version `number` with keys of the payload values of `fields`, in one statement.
    On PostgreSQL a value's key is its 64-bit text hash (hashtextextended), so a million rows × 20
    fields come back as numbers, never as text; elsewhere the payloads are read and keyed here."""
    case, case_params = label_case("m.label", keys)
    columns = {"item_id": np.int64, "truth": np.int16, "bug": np.int64}
    select = [f"m.item_id, {case}, m.bug_id"]
    params = list(case_params)
    postgres = is_postgres()
    if postgres:
        for j, field in enumerate(fields):
            select.append(f"hashtextextended(i.payload ->> %s, 0) AS f{j}")
            params.append(field)
            columns[f"f{j}"] = np.int64
    elif fields:
        select.append("i.payload")
        columns["payload"] = str
    join = f" JOIN {sql.table(Item)} i ON i.id = m.item_id" if fields else ""
    cols = read_columns(
        f"SELECT {', '.join(select)} FROM {sql.table(DatasetMember)} m{join} WHERE {_at_version()}",
        [*params, dataset_id, number, number],
        columns,
    )
    if postgres:
        values = {field: cols[f"f{j}"].astype(np.int64) for j, field in enumerate(fields)}
    else:
        values = _keys_in_python(cols.get("payload"), fields)
    return Members(
        item_ids=cols["item_id"].astype(np.int64),
        truth=cols["truth"].astype(np.int16),
        bugs=cols["bug"].astype(np.int64),
        values=values,
    )


def value_text(value) -> str | None:
    """A payload value as PostgreSQL's `->>` gives it: a string as itself, other JSON as its text."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _keys_in_python(payloads, fields) -> dict:
    parsed = [
        p if isinstance(p, dict) else json.loads(p) if p else {} for p in (payloads if payloads is not None else [])
    ]
    out = {}
    for field in fields:
        texts = [value_text(p.get(field)) if isinstance(p, dict) else None for p in parsed]
        codes, _ = pd.factorize(np.array(texts, dtype=object), use_na_sentinel=True)
        out[field] = codes.astype(np.int64)
    return out


def payload_values(*, item_ids, fields) -> dict:
    """{item id: {field: value text or None}} for a few items (the ones that name the slices)."""
    out = {}
    for item_id, payload in Item.objects.filter(pk__in=list(item_ids)).values_list("pk", "payload"):
        payload = payload if isinstance(payload, dict) else {}
        out[item_id] = {f: value_text(payload.get(f)) for f in fields}
    return out


def lookup(sorted_ids: np.ndarray, sorted_codes: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """The code of each of `item_ids` in (sorted_ids, sorted_codes), -1 where absent."""
    out = np.full(len(item_ids), -1, dtype=np.int16)
    if not len(sorted_ids) or not len(item_ids):
        return out
    pos = np.minimum(np.searchsorted(sorted_ids, item_ids), len(sorted_ids) - 1)
    hit = sorted_ids[pos] == item_ids
    out[hit] = sorted_codes[pos[hit]]
    return out


def stored_codes(
    *, model_version: str, evaluation_ids: list, dataset_id: int, number: int, keys: list, item_ids, production=True
) -> np.ndarray:
    """A model's stored predictions for a version's members (`item_ids`), as label codes aligned
    with them (-1: none): the predictions kept by `evaluation_ids` (the newest evaluation wins per
    item), then, for items still without one and with `production`, the labeling Prediction rows
    of `model_version` (what the model predicted in production)."""
    out = np.full(len(item_ids), -1, dtype=np.int16)
    if not len(item_ids):
        return out
    at = [dataset_id, number, number]
    if evaluation_ids:
        case, case_params = label_case("p.label", keys)
        marks = ", ".join(["%s"] * len(evaluation_ids))
        cols = read_columns(
            f"SELECT p.item_id, p.evaluation_id, {case} FROM {sql.table(EvaluationPrediction)} p "
            f"JOIN {sql.table(DatasetMember)} m ON m.item_id = p.item_id "
            f"WHERE p.evaluation_id IN ({marks}) AND {_at_version()}",
            [*case_params, *evaluation_ids, *at],
            {"item": np.int64, "evaluation": np.int64, "code": np.int16},
        )
        item, evaluation, code = cols["item"], cols["evaluation"], cols["code"]
        if len(item):
            order = np.lexsort((-evaluation, item))
            item, code = item[order], code[order]
            first = np.r_[True, item[1:] != item[:-1]]
            out = lookup(item[first], code[first].astype(np.int16), item_ids)
    if production and (out < 0).any():
        case, case_params = label_case("lp.label", keys)
        cols = read_columns(
            f"SELECT lp.item_id, {case} FROM {sql.table(Prediction)} lp "
            f"JOIN {sql.table(DatasetMember)} m ON m.item_id = lp.item_id "
            f"WHERE lp.model_version = %s AND {_at_version()}",
            [*case_params, model_version, *at],
            {"item": np.int64, "code": np.int16},
        )
        if len(cols["item"]):
            order = np.argsort(cols["item"], kind="stable")
            fallback = lookup(cols["item"][order], cols["code"][order].astype(np.int16), item_ids)
            out = np.where(out >= 0, out, fallback).astype(np.int16)
    out[out < -1] = -1
    return out


def has_stored_predictions(*, project_id: int, model_version: str, evaluation_ids: list) -> bool:
    if evaluation_ids and EvaluationPrediction.objects.filter(evaluation_id__in=evaluation_ids).exists():
        return True
    return Prediction.objects.filter(item__project_id=project_id, model_version=model_version).exists()


def items_resolve(*, project_id: int, external_ids: list) -> tuple[np.ndarray, np.ndarray]:
    """(positions in `external_ids`, item ids) of the external_ids that name an item of the project."""
    if is_postgres():
        positions = np.arange(len(external_ids), dtype=np.int64)
        temp_table_from_arrays(
            "_eval_ids", {"pos": ("int8", positions), "external_id": ("text", (positions, external_ids))}
        )
        cols = read_columns(
            f"SELECT e.pos, i.id FROM _eval_ids e JOIN {sql.table(Item)} i "
            "ON i.project_id = %s AND i.external_id = e.external_id",
            [project_id],
            {"pos": np.int64, "item": np.int64},
        )
        sql.execute("DROP TABLE pg_temp._eval_ids")
        return cols["pos"], cols["item"]
    index = {e: k for k, e in enumerate(external_ids)}
    pos, ids = [], []
    for start in range(0, len(external_ids), 5000):
        for ext, item_id in Item.objects.filter(
            project_id=project_id, external_id__in=external_ids[start : start + 5000]
        ).values_list("external_id", "id"):
            pos.append(index[ext])
            ids.append(item_id)
    return np.asarray(pos, dtype=np.int64), np.asarray(ids, dtype=np.int64)


def predictions_store(*, evaluation_id: int, item_ids: np.ndarray, codes: np.ndarray, keys: list) -> None:
    """Keep an evaluation's predictions (item ids unique), in item order."""
    if not len(item_ids):
        return
    order = np.argsort(item_ids, kind="stable")
    item_ids, codes = np.asarray(item_ids)[order], np.asarray(codes)[order]
    if is_postgres():
        copy_arrays(
            sql.table(EvaluationPrediction),
            {
                "evaluation_id": ("int8", np.full(len(item_ids), evaluation_id, dtype=np.int64)),
                "item_id": ("int8", item_ids.astype(np.int64)),
                "label": ("text", (codes.astype(np.int64), keys)),
            },
        )
        return
    EvaluationPrediction.objects.bulk_create(
        [
            EvaluationPrediction(evaluation_id=evaluation_id, item_id=int(i), label=keys[int(c)])
            for i, c in zip(item_ids, codes)
        ],
        batch_size=5000,
    )
