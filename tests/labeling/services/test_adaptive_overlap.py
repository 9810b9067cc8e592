"""Adaptive overlap (3 annotations, up to 5 where the consensus is in doubt) against a fixed overlap
of 5, on a small simulated crowd, through the real quality runs. The full-size figures are in
benchmarks/quality_adaptive.py."""

import numpy as np
import pytest

from labeling.stats import consensus
from tests.labeling.factories import annotators, crowd_project, crowd_through_runs, simulate_crowd


@pytest.mark.django_db
def test_adaptive_overlap_matches_fixed_overlap_five_with_fewer_annotations():
    crowd = simulate_crowd(
        n_items=400, accuracies=np.linspace(0.55, 0.95, 10), n_classes=5, per_item=5, seed=21, model_accuracy=0.8
    )
    fixed = consensus.score_crowd(crowd.labels, crowd.pred_probs, seed=0)  # every item labeled 5 times
    fixed_accuracy = (fixed.consensus == crowd.true).mean()
    fixed_annotations = 5 * 400

    project, _ = crowd_project(k=5, annotations_per_item=3, max_annotations_per_item=5, accept_threshold=0.6)
    users = annotators(project, 10)
    adaptive = crowd_through_runs(project, users, crowd, start=3)

    assert 2 <= adaptive["runs"] <= 4  # 3 -> 4 -> 5 annotations, then nothing left to reopen
    assert adaptive["annotations"] <= 0.85 * fixed_annotations, adaptive
    assert adaptive["accuracy"] >= fixed_accuracy - 0.01, (adaptive, fixed_accuracy)
