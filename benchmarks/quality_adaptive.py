"""Fixed overlap 3, fixed overlap 5 and adaptive overlap 3 -> 5, on a simulated crowd, through Loupe's
real quality runs with the calibrated accept rule and simulated reviewers.

    python benchmarks/quality_adaptive.py [--items 2000] [--batches 10] [--classes 5] [--seed 0]

Items with known true labels; 10 annotators whose accuracies range from 0.55 to 0.95 (a wrong label
is one of the other classes at random); a production model right about 80% of the time. Items arrive
in batches; after each quality run, reopened items get their next annotator's label and items sent
to review are decided by a reviewer (right with --reviewer-accuracy), whose decisions calibrate the
accept rule of later runs (labeling.stats.calibration; the default rule until 50 decisions exist).
Accuracy is that of the final labels (accepted, unanimous or decided by the reviewer). The audited
error is what Loupe reports from its audits (Wilson 95%); the true error of accepted labels is
measured against the known truth. Runs on the database in DATABASE_URL; projects are deleted
afterwards. Prints one table.
"""

import os as _os
import sys as _sys  # benchmarks/queue.py must not shadow the standard library's queue module

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOUPE_TESTING", "1")  # settings defaults only; DATABASE_URL is used

POLICIES = (("fixed 3", 3, 3), ("fixed 5", 5, 5), ("adaptive 3 -> 5", 3, 5))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-accept-error", type=float, default=0.02)
    ap.add_argument("--audit-rate", type=float, default=0.02)
    ap.add_argument("--reviewer-accuracy", type=float, default=1.0)
    args = ap.parse_args()

    import django

    django.setup()
    import numpy as np

    from labeling.models import Role
    from labeling.stats import consensus
    from tests.labeling.factories import (
        UserFactory,
        add_member,
        annotators,
        crowd_project,
        crowd_through_runs,
        simulate_crowd,
    )

    UserFactory.reset_sequence(int(time.time() * 1000) % 10**9)  # fresh usernames in a shared database

    n, k = args.items, args.classes
    crowd = simulate_crowd(
        n_items=n, accuracies=np.linspace(0.55, 0.95, 10), n_classes=k, per_item=5, seed=args.seed, model_accuracy=0.8
    )
    reference, floor = {}, {}
    for name, matrix in (("fixed 3", crowd.first(3)), ("fixed 5", crowd.labels)):
        right = consensus.score_crowd(matrix, crowd.pred_probs, seed=0).consensus == crowd.true
        labeled = ~np.isnan(matrix)
        disputed = np.array([len(set(row[m].tolist())) > 1 for row, m in zip(matrix, labeled)])
        # A rule that knew the truth would accept every right consensus and as many wrong ones as the
        # target allows: the rest must go to a person, whatever the rule.
        r, w = int((right & disputed).sum()), int((~right & disputed).sum())
        reference[name] = right.mean()
        floor[name] = max(0, w - int(args.max_accept_error * r / (1 - args.max_accept_error))) / n
    results = {}
    for name, start, most in POLICIES:
        project, manager = crowd_project(
            k=k,
            annotations_per_item=start,
            max_annotations_per_item=most,
            accept_mode="calibrated",
            max_accept_error=args.max_accept_error,
            audit_rate=args.audit_rate,
        )
        users = annotators(project, 10)
        reviewer = add_member(project, UserFactory(), Role.REVIEWER)
        t = time.perf_counter()
        try:
            res = crowd_through_runs(
                project,
                users,
                crowd,
                start=start,
                reviewer=reviewer,
                reviewer_accuracy=args.reviewer_accuracy,
                batches=args.batches,
                seed=args.seed,
            )
        finally:
            project.delete()
            for u in [*users, reviewer, manager]:
                u.delete()
        res["seconds"] = time.perf_counter() - t
        results[name] = res

    print(
        f"{n:,} items in {args.batches} batches, {k} classes, 10 annotators (accuracy 0.55..0.95), model ~80% right; "
        f"accept rule: calibrated, max error {args.max_accept_error:.0%}, audit {args.audit_rate:.0%}; "
        f"reviewer right {args.reviewer_accuracy:.0%}"
    )
    print(
        "CROWDLAB consensus alone (no accept rule, no review): "
        + ", ".join(f"{name} {acc:.2%}" for name, acc in reference.items())
    )
    print(
        f"least share a rule that knew the truth must send to people at {args.max_accept_error:.0%} error: "
        + ", ".join(f"{name} {f:.1%}" for name, f in floor.items())
    )
    header = (
        f"{'policy':<16} | {'ann/item':>8} | {'vs fixed 5':>10} | {'accuracy':>8} | {'vs fixed 5':>10} | "
        f"{'to review':>9} | {'accepted':>8} | {'true err':>8} | {'audited error (95%)':>22} | {'rule at end':>22} | runs"
    )
    print(header)
    print("-" * len(header))
    base = results["fixed 5"]
    for name, res in results.items():
        rule = res["rule"]
        audit = rule.get("audit") or {}
        audited = (
            f"{audit['error']:.1%} [{audit['low']:.1%}, {audit['high']:.1%}] n={audit['audited']}"
            if audit.get("audited")
            else "no audits decided"
        )
        at_end = (
            f"threshold {rule['threshold']:.3f}, {rule['decisions']} dec"
            if rule.get("threshold") is not None
            else f"{rule.get('rule', '?')}, {rule.get('decisions', 0)} dec"
        )
        err = res["accepted_error"]
        print(
            f"{name:<16} | {res['annotations'] / n:>8.2f} | {res['annotations'] / base['annotations'] - 1:>+10.0%} | "
            f"{res['accuracy']:>8.2%} | {(res['accuracy'] - base['accuracy']) * 100:>+8.2f}pt | "
            f"{res['reviewed'] / n:>9.1%} | {res['accepted'] / n:>8.1%} | "
            f"{'-' if err is None else f'{err:.2%}':>8} | {audited:>22} | {at_end:>22} | "
            f"{res['runs']} ({res['seconds']:.0f} s)"
        )


if __name__ == "__main__":
    main()
