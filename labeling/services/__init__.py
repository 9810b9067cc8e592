"""Services: every state change, one module per family.

Lock order: a transaction that takes several of these row locks takes them in this order, so that no
two writers wait on each other in a cycle: 1. items, in primary-key order (common.db.locks.lock_rows);
2. an item's assignments (leases), then a label class whose guideline a review decision changes;
3. the annotator's progress row; 4. the label sequence row;
5. the project's QualitySettings row (`quality_run_request` locks it before inserting 6);
6. quality runs. A transaction that still meets a deadlock or a serialization failure is re-run
whole by `labeling.services.retry.retry_on_conflict`.
"""
