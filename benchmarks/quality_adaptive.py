"""Adaptive overlap vs fixed overlap, on a simulated crowd, through Loupe's real quality runs.

    python benchmarks/quality_adaptive.py [--items 3000] [--classes 5] [--seed 0]

Items with known true labels; 10 annotators whose accuracies range from 0.55 to 0.95 (a wrong label
is one of the other classes at random); a production model right about 80% of the time. Every item
has 5 annotators drawn in advance. Fixed overlap uses the first 3 or all 5 labels of every item
(CROWDLAB consensus). Adaptive overlap starts with 3 and, after each quality run, gives the items the
run reopened their next annotator's label, up to 5 (labeling.services.quality on the database in
DATABASE_URL; projects are deleted afterwards). Prints one table.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thresholds", default="0.5,0.6,0.7,0.8")
    args = ap.parse_args()

    import django

    django.setup()
    import numpy as np

    from labeling.stats import consensus
    from tests.labeling.factories import UserFactory, adaptive_overlap, annotators, crowd_project, simulate_crowd

    UserFactory.reset_sequence(int(time.time() * 1000) % 10**9)  # fresh usernames in a shared database

    n, k = args.items, args.classes
    crowd = simulate_crowd(
        n_items=n, accuracies=np.linspace(0.55, 0.95, 10), n_classes=k, per_item=5, seed=args.seed, model_accuracy=0.8
    )
    rows = []
    mv5 = consensus.majority_vote(crowd.labels, k, rng=np.random.default_rng(0))
    rows.append(("fixed 5, majority vote", "", 5 * n, (mv5 == crowd.true).mean(), ""))
    fixed3 = consensus.score_crowd(crowd.first(3), crowd.pred_probs, seed=0)
    rows.append(("fixed 3, CROWDLAB", "", 3 * n, (fixed3.consensus == crowd.true).mean(), ""))
    fixed5 = consensus.score_crowd(crowd.labels, crowd.pred_probs, seed=0)
    acc5 = (fixed5.consensus == crowd.true).mean()
    rows.append(("fixed 5, CROWDLAB", "", 5 * n, acc5, ""))
    for threshold in [float(x) for x in args.thresholds.split(",")]:
        project, manager = crowd_project(
            k=k, annotations_per_item=3, max_annotations_per_item=5, accept_threshold=threshold
        )
        users = annotators(project, 10)
        t = time.perf_counter()
        try:
            res = adaptive_overlap(project, users, crowd, start=3)
        finally:
            project.delete()
            for u in [*users, manager]:
                u.delete()
        rows.append(
            (
                "adaptive 3 -> up to 5 (Loupe)",
                f"{threshold:.2f}",
                res["annotations"],
                res["accuracy"],
                f"{res['runs']} runs, {time.perf_counter() - t:.0f} s",
            )
        )

    print(
        f"{n:,} items, {k} classes, 10 annotators (accuracy 0.55..0.95), model ~80% right; fixed 5 = {5 * n:,} annotations"
    )
    print(
        f"{'policy':<30} | {'accept at':>9} | {'annotations':>11} | {'vs fixed 5':>20} | "
        f"{'consensus accuracy':>18} | {'vs fixed 5':>10} | notes"
    )
    print("-" * 30 + "-|-" + "-|-".join("-" * w for w in (9, 11, 20, 18, 10, 16)))
    for name, thr, ann, acc, note in rows:
        fewer = 5 * n - ann
        print(
            f"{name:<30} | {thr:>9} | {ann:>11,} | {fewer:>7,} fewer ({fewer / (5 * n):>4.0%}) | {acc:>18.2%} | "
            f"{(acc - acc5) * 100:>+8.2f}pt | {note}"
        )


if __name__ == "__main__":
    main()
