"""Receivers of labeling's signals (sent after commit). They only enqueue tasks, after commit,
with ids and values; a broker outage is logged, not raised into labeling's request: the message is
recorded for labeling's work sweep (labeling.services.work), and the failed-prediction filer works
from a cursor that its own periodic sweep catches up with."""

from functools import partial

from django.db import transaction

from labeling.services.work import enqueue as _send


def on_ground_truth_changed(sender, project_id, changes, **kwargs):
    if not changes:
        return
    from bugqueue.tasks import file_failed_predictions

    transaction.on_commit(partial(_send, file_failed_predictions, project_id))


def _seconds(value):
    if value is None:
        return None
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    return float(value)


def on_feedback_slo_changed(
    sender, project_id, breached, observed_seconds=None, target_seconds=None, quantile=None, **kwargs
):
    from bugqueue.tasks import feedback_slo_changed

    transaction.on_commit(
        partial(
            _send,
            feedback_slo_changed,
            project_id,
            bool(breached),
            _seconds(observed_seconds),
            _seconds(target_seconds),
            None if quantile is None else float(quantile),
        )
    )


def on_ground_truth_for_datasets(sender, project_id, changes, **kwargs):
    """Items waiting for ground truth to join a dataset (from resolved bugs) follow once labeled."""
    if not changes:
        return
    from bugqueue.selectors.datasets import pending_item_ids
    from bugqueue.tasks import datasets_absorb_labeled_task

    waiting = pending_item_ids([c.item_id for c in changes], project_id=project_id)
    if waiting:
        transaction.on_commit(partial(_send, datasets_absorb_labeled_task, waiting))
