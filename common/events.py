"""Loupe's events: what happened in a project that someone may want to hear about (a bug regressed,
the feedback-delay SLO broke, a batch looked unlike the recent ones, ...). Any app emits them; the
alerts app stores them, matches them against alert rules and delivers them (labeling and bugqueue
never import it). An event is sent after the transaction that caused it commits, so nothing is
announced that did not happen.

Every event's body is versioned: {"type", "version", "id", "project", "created_at", "subject", "url",
"data"}; `data` is the type's own fields (documented in EVENT_TYPES and the README)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

VERSION = 1

# type -> what it means and the fields of its `data`.
EVENT_TYPES = {
    "bug.created": "A bug was filed (once per bug). data: bug_id, title, kind, priority, model_version, tags, "
    "occurrences.",
    "bug.regressed": "A new occurrence reopened a resolved bug. data: bug_id, title, kind, priority, model_version, "
    "tags, occurrences.",
    "bug.occurrences": "A report added occurrences to an existing bug (one event per bug per report, or per batch "
    "of reports; rules set the "
    "thresholds). data: bug_id, title, kind, priority, model_version, tags, occurrences (total), new (added).",
    "bug.status_changed": "A bug's status changed through the bug service. data: bug_id, title, kind, priority, "
    "model_version, tags, old, new, by (username, empty for the system).",
    "bug.unsnoozed": "A snoozed bug returned to the stream. data: bug_id, title, kind, priority, model_version, "
    "tags, reason (date, occurrences, items: its snooze condition was met; manual: someone unsnoozed it), "
    "occurrences (total), by (username, empty for the system).",
    "slo.breached": "The feedback-delay SLO broke. data: quantile, observed_seconds, target_seconds.",
    "slo.recovered": "The feedback-delay SLO holds again. data: quantile, observed_seconds, target_seconds.",
    "data_quality.alert": "An ingested batch failed data-quality checks. data: batch, checks [{field, check, "
    "observed, expected}], bug_id.",
    "quality_run.finished": "A quality run finished or failed. data: run_id, status (done, failed), scored, "
    "auto_accepted, to_review, error.",
    "export.finished": "An export build finished or failed. data: export_id, status (done, failed), rows, format, "
    "compact, since_seq, until_seq, byte_size, error.",
    "dataset.version_created": "A dataset got a new version. data: dataset_id, name, version, items, added, "
    "removed, relabeled, reason, bug_id.",
    "evaluation.gate_failed": "A model version failed the promotion gate: promotion refused, or a manager "
    "overrode it. data: model_version, stage, evaluation_id, failures [{dataset, name, version, evaluation, "
    "reasons}], overridden, override_reason.",
    "channel.disabled": "A channel was disabled after repeated failed deliveries. data: channel_id, name, "
    "failures, last_error.",
    "alert.test": "A test message from the channels page. data: channel_id.",
}

# kwargs: project_id, type, subject, data, path, key
event_emitted = Signal()


def emit(*, project_id: int, type: str, subject: str, data: dict, path: str = "", key: str = "") -> None:
    """Announce an event after the current transaction commits (at once outside one). `path`: the
    page it is about (a link back); `key`: what the event is about, for grouping and snoozing
    (e.g. "bug:12"), by default the type."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")

    def send():
        event_emitted.send(
            sender=None, project_id=project_id, type=type, subject=subject, data=data, path=path, key=key or type
        )

    transaction.on_commit(send)
