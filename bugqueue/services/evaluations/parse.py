"""Uploaded predictions into compact arrays: rows validated as a whole (every bad row listed, nothing
evaluated), JSON Lines read line by line."""

import math
from dataclasses import dataclass

import numpy as np

from common.api.json_body import json_loads
from common.errors import TooLarge, ValidationFailed
from labeling.selectors.projects import project_label_keys

MAX_EVAL_ROWS = 2_000_000


@dataclass
class PredictionBatch:
    external_ids: list
    labels: np.ndarray  # int16 codes into `keys`
    keys: list


def predictions_parse(*, project, rows) -> PredictionBatch:
    """Validate {"external_id","label","probabilities"?} rows into compact arrays; every bad row is listed."""
    keys = project_label_keys(project=project)
    code = {k: i for i, k in enumerate(keys)}
    key_set = set(keys)
    ext_ids, labels, errors, seen = [], [], [], set()
    n = 0
    for i, row in enumerate(rows):
        n += 1
        if n > MAX_EVAL_ROWS:
            raise TooLarge(f"An evaluation holds at most {MAX_EVAL_ROWS:,} predictions.")
        if not isinstance(row, dict):
            errors.append({"index": i, "message": "row must be an object."})
            continue
        ext, label = row.get("external_id"), row.get("label")
        if isinstance(ext, int) and not isinstance(ext, bool):
            ext = str(ext)
        problem = None
        if not isinstance(ext, str) or not ext:
            problem = "external_id must be a non-empty string."
        elif ext in seen:
            problem = f"external_id {ext!r} appears twice."
        elif label not in code:
            problem = f"label {label!r} is not a label of this project."
        else:
            probs = row.get("probabilities")
            if probs is not None:
                if (
                    not isinstance(probs, dict)
                    or set(probs) != key_set
                    or not all(
                        isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and 0 <= p <= 1
                        for p in probs.values()
                    )
                ):
                    problem = "probabilities must map every label of the project to a number from 0 to 1."
                elif abs(sum(probs.values()) - 1) > 1e-3:
                    problem = "probabilities must sum to 1 (±0.001)."
        if problem:
            if len(errors) < 1000:
                errors.append({"index": i, "message": problem})
            continue
        seen.add(ext)
        ext_ids.append(ext)
        labels.append(code[label])
    if errors:
        raise ValidationFailed(
            f"Invalid predictions; nothing was evaluated. Row {errors[0]['index']}: {errors[0]['message']}",
            fields={"rows": errors},
        )
    if not ext_ids:
        raise ValidationFailed("No predictions given.", fields={"predictions": ["Give at least one prediction."]})
    return PredictionBatch(ext_ids, np.asarray(labels, dtype=np.int16), keys)


def evaluation_rows_from_jsonl(stream, *, max_bytes):
    """Yield JSON Lines rows from a file-like stream without holding the body in memory."""
    read = 0
    for lineno, line in enumerate(stream):
        read += len(line)
        if read > max_bytes:
            raise TooLarge(f"An evaluation body holds at most {max_bytes // (1024 * 1024)} MB.")
        if not line.strip():
            continue
        try:
            row = json_loads(line)
        except ValueError as exc:
            raise ValidationFailed(f"Line {lineno + 1} is not accepted JSON: {exc}", code="parse_error")
        yield row
