"""Model evaluations on validation datasets: parse uploaded predictions (parse), read and write the
rows an evaluation needs in bulk (data), compute metrics, slices and regressions on arrays
(metrics), and run an evaluation against the baseline model with its gate verdict (run)."""

from bugqueue.services.evaluations.parse import (
    MAX_EVAL_ROWS,
    PredictionBatch,
    evaluation_rows_from_jsonl,
    predictions_parse,
)
from bugqueue.services.evaluations.run import evaluation_rerun_stored, evaluation_run

__all__ = [
    "MAX_EVAL_ROWS",
    "PredictionBatch",
    "evaluation_rerun_stored",
    "evaluation_rows_from_jsonl",
    "evaluation_run",
    "predictions_parse",
]
