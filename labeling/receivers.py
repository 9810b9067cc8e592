"""Keeps the feedback-delay rollups fresh when ground truth changes anywhere (annotation, review,
import). Runs after commit (the signal is sent then). If the broker is unreachable the change is not
lost: the message is recorded for the work sweep (labeling.services.work), and the rollups follow
the label history by its commit-ordered seq, so the periodic check catches up too."""

from django.dispatch import receiver

from labeling.signals import ground_truth_changed


# A short delay coalesces bursts (a reviewer resolving items one after another, several import
# batches): the first refresh to run takes every change so far, the ones after it find nothing to do.
REFRESH_COUNTDOWN_SECONDS = 10


def enqueue_refresh(project_id: int) -> None:
    from labeling.services.work import enqueue
    from labeling.tasks import feedback_refresh

    enqueue(feedback_refresh, project_id, countdown=REFRESH_COUNTDOWN_SECONDS)


@receiver(ground_truth_changed, dispatch_uid="loupe-feedback-refresh")
def refresh_after_ground_truth(sender, project_id, changes, **kwargs):
    enqueue_refresh(project_id)
