"""What a quality run decides for each scored item, from the snapshot and the scores alone: accept
the consensus as ground truth, ask for one more annotation, send to review, or leave as it is.
A resolved label the run doubts (one annotator's, or several annotators' that the consensus
contradicts) goes to a person; Loupe itself accepts only a label some annotator chose.
Pure decisions, no database: labeling.services.quality.write carries them out, re-checking each
item against the snapshot first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from labeling.models import GroundTruthMethod, ItemStatus, QualityOutcome
from labeling.services.quality.snapshot import Snapshot
from labeling.stats import consensus


@dataclass
class Plan:
    outcome: np.ndarray  # N object (QualityOutcome values)
    actionable: np.ndarray  # N bool: needs a locked write (or a check that nothing changed)
    audit: np.ndarray | None = None  # N bool: would have been accepted, sent to review as an audit
    p_right: np.ndarray | None = None  # N: the accept rule's estimated P(consensus right), if it has one


def plan_outcomes(
    snap: Snapshot,
    scores: consensus.CrowdScores,
    *,
    accept_threshold: float,
    max_annotations: int,
    accept: np.ndarray | None = None,
    audit: np.ndarray | None = None,
) -> Plan:
    """What the run would do with each item, judged on the snapshot (re-checked under lock at write).
    `accept`: the accept rule's mask (labeling.stats.calibration); without it, quality >= accept_threshold.
    `audit`: items drawn for an audit: a disputed item the rule accepts goes to review instead."""
    n = len(snap.item_ids)
    outcome = np.full(n, QualityOutcome.PENDING.value, dtype=object)
    status = snap.status
    labeled = ~np.isnan(snap.labels)
    # Annotators of the project who have not labeled the item yet (someone must be able to take it).
    if len(snap.annotator_members):
        member_cols = np.isin(snap.annotator_ids, snap.annotator_members)
        already = labeled[:, member_cols].sum(axis=1)
    else:
        already = np.zeros(n, dtype=np.int64)
    can_reopen = (snap.required < max_annotations) & (len(snap.annotator_members) - already > 0)
    # Accept only a label that some annotator chose (CROWDLAB may prefer the model's class).
    rule = (scores.quality >= accept_threshold) if accept is None else np.asarray(accept, dtype=bool)
    good = rule & (scores.agreement > 0) & ~scores.label_issue
    low_outcome = np.where(can_reopen, QualityOutcome.REOPENED.value, QualityOutcome.REVIEW.value)

    disputed = status == ItemStatus.DISPUTED
    audited = disputed & good & (np.zeros(n, dtype=bool) if audit is None else np.asarray(audit, dtype=bool))
    outcome[disputed] = np.where(good[disputed], QualityOutcome.ACCEPTED.value, low_outcome[disputed])
    outcome[audited] = QualityOutcome.REVIEW.value

    resolved = status == ItemStatus.RESOLVED
    outcome[resolved] = QualityOutcome.KEPT.value
    # A single annotator's label that cleanlab doubts (no human agreed with it): ask again or review.
    single_doubt = (
        resolved
        & (scores.num_annotations == 1)
        & ~good
        & np.isin(snap.gt_method, [GroundTruthMethod.UNANIMOUS.value, GroundTruthMethod.CONSENSUS.value])
    )
    outcome[single_doubt] = low_outcome[single_doubt]
    # Several annotators agreed (or a run accepted the label), yet the run's consensus is another
    # label and is not good enough to accept: a person decides. The label stays until then: the item
    # waits in review (disputed, its ground truth kept), and later runs leave it there while the
    # annotators still agree on that label; it is never reopened, as more annotations would not
    # settle a disagreement between the humans and the model.
    gt_method = snap.gt_method
    contradicted = (scores.num_annotations > 1) & ~good & (_label_keys(snap)[scores.consensus] != snap.gt_label)
    agreed = np.isin(gt_method, [GroundTruthMethod.UNANIMOUS.value, GroundTruthMethod.CONSENSUS.value])
    gt_idx = pd.Index(snap.label_keys).get_indexer(snap.gt_label)
    still_unanimous = labeled.any(axis=1) & ((snap.labels == gt_idx[:, None]) | ~labeled).all(axis=1)
    waiting = disputed & (
        (gt_method == GroundTruthMethod.CONSENSUS.value)
        | ((gt_method == GroundTruthMethod.UNANIMOUS.value) & still_unanimous)
    )
    doubted_agreement = contradicted & ((resolved & agreed) | waiting)
    outcome[doubted_agreement] = QualityOutcome.REVIEW.value
    outcome[status == ItemStatus.CONFLICT] = QualityOutcome.KEPT.value
    actionable = disputed | single_doubt | doubted_agreement
    return Plan(outcome=outcome, actionable=actionable, audit=audited)


def _label_keys(snap: Snapshot) -> np.ndarray:
    return np.array(snap.label_keys, dtype=object)


def plan_summary(outcome: np.ndarray, quality: np.ndarray, label_issue: np.ndarray) -> dict:
    """The run's counts, from the outcomes its per-item results were written with."""
    quality = np.nan_to_num(quality, nan=0.0)  # as the results store it
    return {
        "scored": len(outcome),
        "mean_quality": float(quality.mean()) if len(quality) else None,
        "auto_accepted": int((outcome == QualityOutcome.ACCEPTED).sum()),
        "to_review": int((outcome == QualityOutcome.REVIEW).sum()),
        "reopened_for_more": int((outcome == QualityOutcome.REOPENED).sum()),
        "skipped_stale": int((outcome == QualityOutcome.STALE).sum()),
        "label_issues": int(np.asarray(label_issue, dtype=bool).sum()),
    }
