"""Keeps the feedback-delay rollups fresh when ground truth changes anywhere (annotation, review,
import). Runs after commit (the signal is sent then). If the broker is unreachable the change is not
lost: the rollups follow the label history by its commit-ordered seq, so the periodic check
catches up."""

import logging

from django.dispatch import receiver

from labeling.signals import ground_truth_changed

log = logging.getLogger(__name__)


# A short delay coalesces bursts (a reviewer resolving items one after another, several import
# batches): the first refresh to run takes every change so far, the ones after it find nothing to do.
REFRESH_COUNTDOWN_SECONDS = 10


def enqueue_refresh(project_id: int) -> None:
    from labeling.tasks import feedback_refresh

    try:
        feedback_refresh.apply_async((project_id,), countdown=REFRESH_COUNTDOWN_SECONDS)
    except Exception:  # the broker is down: the periodic feedback check refreshes later
        log.exception("could not enqueue feedback_refresh for project %s; the periodic check will", project_id)


@receiver(ground_truth_changed, dispatch_uid="loupe-feedback-refresh")
def refresh_after_ground_truth(sender, project_id, changes, **kwargs):
    enqueue_refresh(project_id)
