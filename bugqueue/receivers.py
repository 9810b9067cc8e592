"""Receivers of labeling's signals (sent after commit). They enqueue tasks, after commit, with ids
and values (the datasets' receiver first records when its absorb pass is due); a broker outage is
logged, not raised into labeling's request: the message is recorded for labeling's work sweep
(labeling.services.work), the failed-prediction filer works from a cursor that its own periodic
sweep catches up with, and the absorb sweep runs passes that are due. A data-quality alert event files its bug here, at once."""

import logging
from functools import partial

from django.db import transaction

from labeling.services.work import enqueue as _send

logger = logging.getLogger(__name__)


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
    """Items waiting to join a dataset (from resolved bugs) got ground truth: schedule the project's
    absorb pass (one per batch window, bugqueue.services.absorb). The due time is written here, so
    with the broker down the periodic sweep still runs the pass when it is due."""
    if not changes:
        return
    from bugqueue.selectors.datasets import pending_item_ids
    from bugqueue.services.absorb import datasets_absorb_schedule
    from bugqueue.tasks import datasets_absorb_pass_task
    from labeling.services.work import task_named

    if not pending_item_ids([c.item_id for c in changes], project_id=project_id):
        return
    in_process = task_named(datasets_absorb_pass_task).app.conf.task_always_eager  # no delayed tasks there
    countdown = datasets_absorb_schedule(project_id=project_id, at_once=in_process)
    if countdown is None:
        return  # a pass is already due later: it absorbs these items too
    options = {"countdown": countdown} if countdown else {}
    transaction.on_commit(partial(_send, datasets_absorb_pass_task, project_id, **options))


def on_event_emitted(sender, project_id, type, data, path="", **kwargs):
    """A data_quality.alert (already after commit) files or updates its (field, check) bug at once,
    and puts the bug's id into the event's data (bugqueue's receiver is connected before the alerts
    app's, which stores the event). A failure to file is logged: the event still goes out."""
    if type != "data_quality.alert":
        return
    from bugqueue.services.data_quality import data_quality_file

    try:
        result = data_quality_file(project_id=project_id, data=data, path=path)
    except Exception:
        logger.exception("could not file the data-quality bug of batch %s", data.get("batch"))
        return
    if result is not None:
        data["bug_id"] = result.bug.pk
