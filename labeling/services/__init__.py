"""Services: every state change, one module per family.

Lock order. Every transaction that takes more than one of these row locks takes them in this order,
so that two writers never wait on each other in a cycle (PostgreSQL would abort one with a deadlock):

1. items, in primary-key order (queue, annotations, ground truth, quality-run writes);
2. an item's assignments (leases);
3. the annotator's progress row;
4. the label sequence row (label history, ground_truth_set_many);
5. the project's quality-settings row (QualitySettings: disputed counter, automatic runs);
6. quality runs (inserting one takes the one-active-run-per-project index entry; finishing one
   updates its row).

Annotation submits take 1 -> 2 -> 3 -> (4) -> 5 -> 6 when an item becomes disputed and starts an
automatic run; `quality_run_request` locks 5 before it inserts 6 whichever path calls it (a submit, the
end of a run, a manager). Submits that still meet a deadlock or a serialization failure are re-run
whole by `labeling.services.retry.retry_on_conflict`.
"""
