"""Evaluation arithmetic on arrays (no database): overall scores, per-slice scores against a
baseline, and regressions. Labels are int codes into the project's keys, -1 for "no prediction"
(or, for the truth, a label that is not the project's). Every figure of every slice of a field
comes from a few bincounts over (slice code × class), so the cost grows with the items, not with
the number of slices.

Accuracy and macro F1 count the items that have a prediction (missing ones are reported apart);
macro F1 averages over the classes that occur in the truth or the predictions, as scikit-learn's
f1_score with those labels does."""

import numpy as np
import pandas as pd

MAX_SLICE_VALUES = 50
MIN_SLICE_N = 5
OTHER, NONE = "(other)", "(none)"


def _f1_macro(tp: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Macro F1 per leading index of (…, K) count arrays: mean over classes with rows + cols > 0."""
    denom = rows + cols
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    present = (denom > 0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(present > 0, f1.sum(axis=-1) / np.where(present > 0, present, 1), np.nan)


def scores(truth: np.ndarray, pred: np.ndarray, k: int) -> dict:
    """accuracy, macro_f1 (None without any scored item), per-class recall (None for a class absent
    from the truth) and the confusion matrix (rows = true label) over items with a prediction."""
    has = (pred >= 0) & (truth >= 0)
    t, p = truth[has].astype(np.int64), pred[has].astype(np.int64)
    matrix = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    n = int(has.sum())
    tp, rows, cols = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    recall = [float(tp[c] / rows[c]) if rows[c] else None for c in range(k)]
    if not n:
        return {"accuracy": None, "macro_f1": None, "recall": recall, "matrix": matrix.tolist()}
    return {
        "accuracy": float(tp.sum() / n),
        "macro_f1": float(_f1_macro(tp.astype(float), rows, cols)),
        "recall": recall,
        "matrix": matrix.tolist(),
    }


def slice_codes(value_keys: np.ndarray, *, cap: int = MAX_SLICE_VALUES) -> tuple[np.ndarray, list]:
    """Codes for a field's values (keys of equal values, -1 for a missing or null one): the `cap`
    most frequent values keep their own slice, the rest share OTHER, the missing ones are NONE. Each
    name is NONE, OTHER, or (an int) the index of a row that holds the value, for the caller to name."""
    codes, uniques = pd.factorize(value_keys, sort=False)
    first = np.zeros(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    names = [NONE if u == -1 else int(first[j]) for j, u in enumerate(uniques.tolist())]
    return _capped(codes.astype(np.int64), names, cap)


def id_slice_codes(ids: np.ndarray, *, cap: int = MAX_SLICE_VALUES) -> tuple[np.ndarray, list]:
    """Codes and names for integer values (-1: none), as slice_codes."""
    codes, uniques = pd.factorize(ids, sort=False)
    return _capped(codes.astype(np.int64), [NONE if u < 0 else str(u) for u in uniques.tolist()], cap)


def _capped(codes: np.ndarray, names: list, cap: int) -> tuple[np.ndarray, list]:
    counts = np.bincount(codes, minlength=len(names))
    named = [j for j in np.argsort(-counts, kind="stable").tolist() if names[j] != NONE]
    keep = named[:cap]
    out_names = [names[j] for j in keep]
    table = np.full(len(names), -1, dtype=np.int64)
    table[keep] = np.arange(len(keep))
    if len(named) > cap:
        table[named[cap:]] = len(out_names)
        out_names.append(OTHER)
    if NONE in names:
        table[names.index(NONE)] = len(out_names)
        out_names.append(NONE)
    return table[codes], out_names


class Scored:
    """The arrays every slice of one result shares, computed once: items with a known label, their
    label, and whether the model (and the baseline) answered and was right."""

    def __init__(self, truth: np.ndarray, pred: np.ndarray, base: np.ndarray | None, k: int):
        self.k = k
        self.known = truth >= 0
        self.t = truth[self.known].astype(np.int64)
        p = pred[self.known].astype(np.int64)
        self.has = (p >= 0).astype(np.float64)
        self.right = ((p >= 0) & (p == self.t)).astype(np.float64)
        self.p = np.maximum(p, 0)  # (weighted by `has` below: a missing answer counts nowhere)
        self.base = base is not None
        if self.base:
            b = base[self.known].astype(np.int64)
            self.b_has = (b >= 0).astype(np.float64)
            self.b_right = ((b >= 0) & (b == self.t)).astype(np.float64)


def slice_rows(field: str, codes: np.ndarray, names: list, scored: Scored, threshold: float) -> list[dict]:
    """One row per slice value: n (members with a known label), accuracy and macro F1 of the model,
    the baseline's accuracy on the same slice, delta = accuracy − baseline accuracy, and dropped
    (delta below −threshold on a slice of at least MIN_SLICE_N items). Weighted bincounts: no copy
    of the arrays per slice or per field beyond the codes."""
    v, k, s = len(names), scored.k, scored
    c = codes[s.known]
    n = np.bincount(c, minlength=v)
    answered = np.bincount(c, weights=s.has, minlength=v)
    correct = np.bincount(c, weights=s.right, minlength=v)
    ct = c * k + s.t
    tp = np.bincount(ct, weights=s.right, minlength=v * k).reshape(v, k)
    rows = np.bincount(ct, weights=s.has, minlength=v * k).reshape(v, k)
    cols = np.bincount(c * k + s.p, weights=s.has, minlength=v * k).reshape(v, k)
    f1 = _f1_macro(tp, rows, cols)
    if s.base:
        b_answered = np.bincount(c, weights=s.b_has, minlength=v)
        b_correct = np.bincount(c, weights=s.b_right, minlength=v)
    out = []
    for j in range(v):
        if not n[j]:
            continue
        acc = float(correct[j] / answered[j]) if answered[j] else None
        b_acc = float(b_correct[j] / b_answered[j]) if s.base and b_answered[j] else None
        delta = acc - b_acc if acc is not None and b_acc is not None else None
        out.append(
            {
                "field": field,
                "value": names[j],
                "n": int(n[j]),
                "accuracy": acc,
                "macro_f1": None if np.isnan(f1[j]) else float(f1[j]),
                "baseline_accuracy": b_acc,
                "delta": delta,
                "dropped": bool(delta is not None and n[j] >= MIN_SLICE_N and delta < -threshold),
            }
        )
    tail = {OTHER: 1, NONE: 2}
    out.sort(key=lambda r: (tail.get(r["value"], 0), -r["n"], r["value"]))
    return out


def regressions(truth: np.ndarray, pred: np.ndarray, base: np.ndarray, bugs: np.ndarray) -> np.ndarray:
    """Mask of bug items (bugs >= 0) the baseline got right and `pred` gets wrong (or has no answer for)."""
    return (bugs >= 0) & (truth >= 0) & (base == truth) & (pred != truth)
