"""Synthetic production traffic for the feedback-delay tests: predictions at known times, ground
truth arriving after delays drawn from a known distribution, all written through the real services
(ingestion and the ground-truth import)."""

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

import numpy as np

from labeling.services.feedback import ground_truth_import
from labeling.services.ingestion import items_ingest

DAY = 86400
CHUNK = 5000


@dataclass
class Synthetic:
    cutoff: datetime
    predicted: np.ndarray  # epoch seconds
    delay: np.ndarray  # seconds (drawn for every prediction)
    labeled: np.ndarray  # bool: truth arrived by the cut-off
    correct: np.ndarray  # bool: truth == prediction
    conf: np.ndarray
    source: np.ndarray


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=dt_timezone.utc).isoformat()


def synthetic_traffic(project, *, n, days, cutoff, delays, seed=3, sources=("chargeback", "user_correction"),
                      model_version="v1", prefix="s") -> Synthetic:
    """`delays(rng, n)` draws n delays in seconds. Predictions are uniform over the `days` before `cutoff`."""
    rng = np.random.default_rng(seed)
    end = cutoff.timestamp()
    predicted = end - rng.uniform(0, days * DAY, n)
    delay = delays(rng, n)
    labeled = predicted + delay <= end
    conf = rng.uniform(0.5, 0.99, n)
    correct = rng.random(n) < conf
    source = np.array([sources[i % len(sources)] for i in range(n)])
    rows = []
    for i in range(n):
        pos = round(float(conf[i]), 4)
        neg = round((1 - pos) / 2, 4)
        rows.append({
            "external_id": f"{prefix}{i}", "payload": {"text": f"t{i}"},
            "prediction": {"model_version": model_version, "label": "pos",
                           "probabilities": {"pos": pos, "neg": neg, "neu": round(1 - pos - neg, 4)},
                           "predicted_at": _iso(predicted[i])},
        })
    for start in range(0, n, CHUNK):
        items_ingest(project=project, rows=rows[start:start + CHUNK])
    truth = [
        {"external_id": f"{prefix}{i}", "label": "pos" if correct[i] else "neg",
         "observed_at": _iso(predicted[i] + delay[i]), "source": str(source[i])}
        for i in np.nonzero(labeled)[0]
    ]
    for start in range(0, len(truth), CHUNK):
        ground_truth_import(project=project, rows=truth[start:start + CHUNK])
    # keep the probabilities as stored (rounded), for direct computations
    conf = np.round(conf, 4)
    return Synthetic(cutoff, predicted, delay, labeled, correct, conf, source)


def lognormal(median_seconds, sigma):
    return lambda rng, n: rng.lognormal(np.log(median_seconds), sigma, n)


def cutoff_now(minutes_ago=5) -> datetime:
    """A cut-off just before now (imports reject observations from the future)."""
    return datetime.now(tz=dt_timezone.utc).replace(microsecond=0) - timedelta(minutes=minutes_ago)
