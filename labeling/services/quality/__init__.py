"""Quality runs: score a project's annotations with cleanlab and act on the result.

- runs: a run's life (request, claim, execute, finish, recover, prune) and the project's settings;
- snapshot: the one consistent read a run scores, and the pred_probs it starts from;
- plan: what to do with each item, decided from the snapshot and the scores alone;
- write: carrying the plan out, leaving alone every item people changed since the snapshot.
"""
