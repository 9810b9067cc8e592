"""The periodic work sweep (beat task loupe.work_sweep, every minute): the one service that knows
every kind of recoverable work. It sits above labeling.services.work, which the owners of that work
(quality runs, exports) use to send and recover their messages."""

from __future__ import annotations

from labeling.services.export import exports_recover
from labeling.services.quality.runs import quality_runs_recover
from labeling.services.work import Sender, deferred_tasks_send


def work_sweep(*, now=None) -> dict:
    """Quality runs, export builds, then any other unsent task message; after the first broker
    failure the rest of the sweep does not wait on the broker."""
    sender = Sender()
    quality = quality_runs_recover(now=now, sender=sender)
    exports = exports_recover(now=now, sender=sender)
    return {"quality_runs": quality, "exports": exports, "deferred_sent": deferred_tasks_send(sender=sender)}
