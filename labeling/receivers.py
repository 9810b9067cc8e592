"""Signal receivers of the labeling app: each connects a signal to one service.

Ground truth changes (annotation, review, import) refresh the feedback-delay rollups after commit
(the signal is sent then); labeling.services.feedback_rollup owns the refresh and its task message.
"""

from django.dispatch import receiver

from labeling.services.feedback_rollup import feedback_refresh_enqueue
from labeling.signals import ground_truth_changed


@receiver(ground_truth_changed, dispatch_uid="loupe-feedback-refresh")
def refresh_after_ground_truth(sender, project_id, changes, **kwargs):
    feedback_refresh_enqueue(project_id)
