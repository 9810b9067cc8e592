"""Shared by the quality-run tests: run a run now (no broker), read its per-item results."""

from unittest import mock

import numpy as np

from labeling.models import QualityItemResult
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute, quality_run_request
from labeling.stats import consensus

ACCURACIES = np.linspace(0.55, 0.95, 10)


def run_now(project, **kw):
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk, **kw)
    return quality_run_execute(run_id=run.pk)


def results_by_item(run):
    return {r.item_id: r for r in QualityItemResult.objects.filter(run=run)}


def majority_vote_accuracy(crowd, seed=0):
    mv = consensus.majority_vote(crowd.labels, crowd.pred_probs.shape[1], rng=np.random.default_rng(seed))
    return (mv == crowd.true).mean()
