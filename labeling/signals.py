"""Events labeling announces to other apps (bugqueue subscribes; labeling never imports it).

All are sent after the transaction that caused them has committed.
"""

from django.dispatch import Signal

# kwargs: project_id, changes: list[GroundTruthChange]
ground_truth_changed = Signal()
# kwargs: project_id, breached: bool, observed_seconds, target_seconds, quantile
feedback_slo_changed = Signal()
