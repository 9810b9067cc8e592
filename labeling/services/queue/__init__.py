"""Annotator task queues, by phase of a lease:

- claim: handing out the next item (the SKIP LOCKED claim, its portable twin, the queue order);
- leases: skip, cancellation when an item is done, the expiry sweep;
- maintenance: re-keying open items after an ordering change, reconciling stored counters.
"""
