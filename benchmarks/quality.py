"""Cost of one quality run at scale, on the PostgreSQL database in DATABASE_URL.

    python benchmarks/quality.py [--items 300000] [--annotators 20] [--classes 10] [--accept-threshold 0.7] [--keep]

Builds a project of N items x 3 annotations from 20 simulated annotators (accuracies 0.55..0.95)
over 10 classes, with a production prediction per item, loaded with COPY. Items whose three labels
agree are resolved (ground truth "unanimous", as the annotation service leaves them); the others are
disputed; then VACUUM ANALYZE and a CHECKPOINT, as a project at rest would be (the load's own
checkpoint otherwise runs during the measured run). Then one quality run executes in a fresh process
(so its peak memory is its own, and it starts cold: first connections, first large arrays; it is
connected to the broker, as the Celery worker that runs a quality run is) and
the script prints one table: wall time split into database read, pred_probs, cleanlab, database
write; peak memory; and the target "everything but cleanlab < half of the cleanlab call" (cleanlab:
the time inside cleanlab's functions; Loupe's checks and ActiveLab arithmetic around the call count
on the other side).
It also times queue/next while the run's requests for one more annotation wait (each claim opens
one), the review queue's lease, the project list's counts and the agreement read on the same data. The project is
deleted at the end unless --keep. The project's accept_threshold (0.7) decides the backlog's mix:
with these annotators nearly every disputed item is sent back for a 4th annotation; a lower one
(--accept-threshold 0.3) makes the backlog mostly accepted (ground truth written) instead.
"""

import os as _os
import sys as _sys  # benchmarks/queue.py must not shadow the standard library's queue module

_HERE = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _HERE] + [_HERE]
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOUPE_TESTING", "1")  # settings defaults only (no DEBUG query log); DATABASE_URL is used


def setup():
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("benchmarks/quality.py needs PostgreSQL: set DATABASE_URL=postgres://...")


def build(n_items, n_annotators, n_classes, seed=0, accept_threshold=0.7):
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from common.db.copy import copy_rows
    from labeling.models import Annotation, GroundTruth, Item, LabelChange, LabelSequence, Prediction, Role
    from labeling.services.ingestion import probability_vector  # as ingestion stores them
    from labeling.services.projects import LabelSpec, member_add, project_create

    User = get_user_model()
    rng = np.random.default_rng(seed)
    stamp = int(time.time())
    manager = User.objects.create_user(username=f"bench-q-manager-{stamp}", password=None)
    labels = [LabelSpec(f"class{j}", f"Class {j}", "", str(j) if j < 10 else "") for j in range(n_classes)]
    labels = [LabelSpec(s.key, s.name, s.guideline, s.hotkey if s.hotkey not in ("s", "?") else "") for s in labels]
    project = project_create(
        creator=manager,
        name=f"bench quality {stamp}",
        labels=labels,
        annotations_per_item=3,
        max_annotations_per_item=5,
        accept_threshold=accept_threshold,
    )
    users = User.objects.bulk_create([User(username=f"bench-q-{stamp}-{j}") for j in range(n_annotators)])
    for u in users:
        member_add(project=project, username=u.username, role=Role.ANNOTATOR)
    reviewer = User.objects.create_user(username=f"bench-q-reviewer-{stamp}", password=None)
    member_add(project=project, username=reviewer.username, role=Role.REVIEWER)
    keys = [s.key for s in labels]

    acc = np.linspace(0.55, 0.95, n_annotators)
    true = rng.integers(0, n_classes, n_items)
    who = np.argsort(rng.random((n_items, n_annotators)), axis=1)[:, :3]
    right = rng.random((n_items, 3)) < acc[who]
    wrong = (true[:, None] + rng.integers(1, n_classes, (n_items, 3))) % n_classes
    lab = np.where(right, true[:, None], wrong)
    unanimous = (lab[:, 0] == lab[:, 1]) & (lab[:, 1] == lab[:, 2])
    logits = rng.normal(0.0, 1.0, (n_items, n_classes))
    target = np.where(rng.random(n_items) < 0.8, true, rng.integers(0, n_classes, n_items))
    logits[np.arange(n_items), target] += 2.5
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)

    now = timezone.now()
    user_ids = np.array([u.pk for u in users], dtype=np.int64)
    t = time.perf_counter()
    with transaction.atomic(), connection.cursor() as c:
        cur = c.cursor
        copy_rows(
            Item._meta.db_table,
            [
                "project_id",
                "external_id",
                "payload",
                "priority",
                "status",
                "required_annotations",
                "annotation_count",
                "created_at",
                "updated_at",
                "touchers",
            ],
            (
                (
                    project.pk,
                    f"b{i}",
                    json.dumps({"text": f"item {i}"}),
                    0,
                    "resolved" if unanimous[i] else "disputed",
                    3,
                    3,
                    now,
                    now,
                    json.dumps(sorted(user_ids[who[i]].tolist())),
                )  # everyone who held a lease, as the queue leaves it
                for i in range(n_items)
            ),
        )
        cur.execute(f"SELECT id FROM {Item._meta.db_table} WHERE project_id = %s ORDER BY id", [project.pk])
        ids = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
        copy_rows(
            Annotation._meta.db_table,
            ["project_id", "item_id", "annotator_id", "label", "seconds_spent", "is_surplus", "created_at"],
            (
                (project.pk, int(ids[i]), int(user_ids[who[i, j]]), keys[lab[i, j]], 5.0 + (i + j) % 30, False, now)
                for i in range(n_items)
                for j in range(3)
            ),
        )
        rounded = probs.round(6)
        copy_rows(
            Prediction._meta.db_table,
            ["item_id", "model_version", "label", "probabilities", "vector", "predicted_at", "created_at"],
            (
                (
                    int(ids[i]),
                    "bench-v1",
                    keys[int(np.argmax(probs[i]))],
                    json.dumps(dict(zip(keys, rounded[i].tolist()))),
                    probability_vector(dict(zip(keys, rounded[i].tolist())), keys),
                    now,
                    now,
                )
                for i in range(n_items)
            ),
        )
        un = np.nonzero(unanimous)[0]
        copy_rows(
            GroundTruth._meta.db_table,
            ["item_id", "label", "method", "decided_at", "source", "note", "first_arrived_at"],
            ((int(ids[i]), keys[lab[i, 0]], "unanimous", now, "", "", now) for i in un),
        )
        copy_rows(
            LabelChange._meta.db_table,
            [
                "project_id",
                "seq",
                "item_id",
                "external_id",
                "label",
                "previous_label",
                "method",
                "annotators",
                "model_version",
                "source",
                "note",
                "changed_at",
            ],
            (
                (
                    project.pk,
                    n + 1,
                    int(ids[i]),
                    f"b{i}",
                    keys[lab[i, 0]],
                    "",
                    "unanimous",
                    json.dumps(user_ids[who[i]].tolist()),
                    "",
                    "",
                    "",
                    now,
                )
                for n, i in enumerate(un)
            ),
        )
        LabelSequence.objects.filter(project=project).update(last_seq=len(un))
    with connection.cursor() as c:  # as autovacuum leaves tables in production: statistics, hint bits, visibility map
        for table in (Item, Annotation, Prediction, GroundTruth, LabelChange):
            c.execute(f"VACUUM ANALYZE {table._meta.db_table}")
        # The load wrote ~1 GB of WAL, past max_wal_size: the checkpoint it set off would otherwise
        # flush those pages while the run is measured. A production run never starts inside a bulk
        # load, so the checkpoint is done here (it needs a superuser or pg_checkpoint; else skipped).
        try:
            with transaction.atomic():
                c.execute("CHECKPOINT")
        except Exception as exc:  # noqa: BLE001
            print(f"(no CHECKPOINT after the load: {exc})", file=sys.stderr)
    return project, reviewer, time.perf_counter() - t, int(unanimous.sum())


def run_in_child(project_id):
    """Queue and execute runs in a fresh interpreter (its peak memory is the runs'); returns their figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(project_id)], capture_output=True, text=True, env=os.environ
    )
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(project_id):
    setup()
    from unittest import mock

    import cleanlab.multiannotator  # noqa: F401  (imported before the baseline: not part of the run)
    import sklearn.linear_model  # noqa: F401

    from config.celery import warm_broker

    # A run executes in a Celery worker, which is connected to its broker: the first task message the
    # run sends (an accept chunk's refresh of the feedback figures) must not pay for loading the
    # broker's transport and connecting (0.18 s of imports, holding the GIL, in a bare process).
    warm_broker()

    from labeling.services.quality import runs as quality

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures = []
    # 1: the backlog (every disputed item waits for a decision); 2: the next run, steady state (the
    # items sent back for a 4th annotation are still waiting for it: nothing new to decide).
    for _ in range(2):
        with mock.patch.object(quality, "_enqueue"):
            run = quality.quality_run_request(project_id=project_id)
        t = time.perf_counter()
        run = quality.quality_run_execute(run_id=run.pk)
        wall = time.perf_counter() - t
        figures.append(
            {
                "run_id": run.pk,
                "status": run.status,
                "error": run.error,
                "wall": wall,
                "read": run.seconds_read,
                "pred_probs": run.seconds_pred_probs,
                "cleanlab": run.seconds_cleanlab,
                "write": run.seconds_write,
                "total": run.seconds_total,
                "scored": run.scored,
                "accepted": run.auto_accepted,
                "reopened": run.reopened_for_more,
                "review": run.to_review,
                "mean_quality": run.mean_quality,
                "source": run.pred_probs_source,
                "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    print(json.dumps({"baseline_mib": baseline / 1024, "runs": figures}))


CLAIMS = 200


def claims_with_requests(project):
    """queue/next while the backlog run's requests for a 4th annotation wait: each claim opens the
    best-ranked request its annotator may take (labeling.services.queue.claim._open_requested). Returns
    (requests waiting, sorted claim seconds)."""
    from django.contrib.auth import get_user_model

    from labeling.models import Membership, ReopenRequest, Role
    from labeling.services.queue.claim import assignment_claim_next
    from labeling.services.queue.leases import assignment_skip

    waiting = ReopenRequest.objects.filter(project=project).count()
    users = list(
        get_user_model()
        .objects.filter(pk__in=Membership.objects.filter(project=project, role=Role.ANNOTATOR).values("user_id"))
        .order_by("pk")
    )
    took = []
    for n in range(CLAIMS):
        user = users[n % len(users)]
        t = time.perf_counter()
        claim = assignment_claim_next(project=project, annotator=user)
        took.append(time.perf_counter() - t)
        assert claim is not None and not claim.reused
        assignment_skip(assignment_id=claim.assignment_id, annotator=user)  # (not timed) frees the lease slot
    return waiting, sorted(took)


def review_with_requests(project, reviewer):
    """review/next and the review queue's size while the requested items (stored as disputed) wait."""
    from labeling.selectors.quality import review_queue_size
    from labeling.services.resolution import review_next

    t = time.perf_counter()
    lease = review_next(project=project, reviewer=reviewer)
    lease_s = time.perf_counter() - t
    t = time.perf_counter()
    size = review_queue_size(project=project)
    return lease_s, lease is not None, size, time.perf_counter() - t


def project_list_with_requests(project):
    """The project list's counts (home page and project page) while the requests wait: a requested
    item counts as open. Returns (seconds, n_open, n_disputed)."""
    from labeling.selectors.projects import project_list_with_counts

    t = time.perf_counter()
    row = next(p for p in project_list_with_counts(user=project.created_by) if p.pk == project.pk)
    return time.perf_counter() - t, row.n_open, row.n_disputed


def reads(project, reviewer):
    # Steady state of the review queue: as if the latest run had sent every doubtful item to review
    # (no annotator left to ask), so reviewers pick among all of them.
    from labeling.models import Item, QualityItemResult, QualityRun, ReopenRequest
    from labeling.selectors import quality as sq
    from labeling.services.resolution import review_next

    ReopenRequest.objects.filter(project=project).delete()
    Item.objects.filter(project=project, status="open").update(status="disputed")
    latest = QualityRun.objects.filter(project=project, status="done").order_by("-id").first()
    QualityItemResult.objects.filter(run=latest, outcome__in=["pending", "reopened"]).update(outcome="review")
    t = time.perf_counter()
    lease = review_next(project=project, reviewer=reviewer)
    lease_s = time.perf_counter() - t
    t = time.perf_counter()
    again = review_next(project=project, reviewer=reviewer)
    held_s = time.perf_counter() - t
    assert lease is not None and again.pk == lease.pk
    t = time.perf_counter()
    agreement = sq.project_agreement(project=project)
    agreement_s = time.perf_counter() - t
    t = time.perf_counter()
    sq.annotator_table(project=project)
    annotators_s = time.perf_counter() - t
    return lease_s, held_s, agreement_s, annotators_s, agreement


def drop(project):
    from django.db import connection

    from labeling.models import (
        Annotation,
        Assignment,
        GroundTruth,
        Item,
        LabelChange,
        Prediction,
        QualityAnnotatorStat,
        QualityItemResult,
        QualityRun,
        ReopenRequest,
    )

    t = {
        m: m._meta.db_table
        for m in (
            Annotation,
            Assignment,
            GroundTruth,
            Item,
            LabelChange,
            Prediction,
            QualityAnnotatorStat,
            QualityItemResult,
            QualityRun,
            ReopenRequest,
        )
    }
    with connection.cursor() as c:
        c.execute(
            f"DELETE FROM {t[QualityItemResult]} WHERE run_id IN (SELECT id FROM {t[QualityRun]} WHERE project_id = %s)",
            [project.pk],
        )
        c.execute(
            f"DELETE FROM {t[QualityAnnotatorStat]} WHERE run_id IN (SELECT id FROM {t[QualityRun]} WHERE project_id = %s)",
            [project.pk],
        )
        c.execute(f"DELETE FROM {t[QualityRun]} WHERE project_id = %s", [project.pk])
        c.execute(f"DELETE FROM {t[LabelChange]} WHERE project_id = %s", [project.pk])
        c.execute(f"DELETE FROM {t[ReopenRequest]} WHERE project_id = %s", [project.pk])
        for model in (GroundTruth, Annotation, Prediction, Assignment):
            c.execute(
                f"DELETE FROM {t[model]} WHERE item_id IN (SELECT id FROM {t[Item]} WHERE project_id = %s)",
                [project.pk],
            )
        c.execute(f"DELETE FROM {t[Item]} WHERE project_id = %s", [project.pk])
    project.delete()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=300_000)
    ap.add_argument("--annotators", type=int, default=20)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--accept-threshold", type=float, default=0.7)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", type=int)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    setup()
    load_before = f"{os.getloadavg()[0]:.1f}"
    project, reviewer, load_s, n_unanimous = build(
        args.items, args.annotators, args.classes, accept_threshold=args.accept_threshold
    )
    try:
        out = run_in_child(project.pk)
        waiting, claims = claims_with_requests(project)
        review_pending = review_with_requests(project, reviewer)
        listed = project_list_with_requests(project)
        lease_s, held_s, agreement_s, annotators_s, agreement = reads(project, reviewer)
    finally:
        if not args.keep:
            drop(project)
    for r in out["runs"]:
        if r["status"] != "done":
            sys.exit(f"run failed: {r['error']}")
    rows = [
        (
            "data",
            f"{args.items:,} items x 3 annotations, {args.annotators} annotators, {args.classes} classes; "
            f"{n_unanimous:,} unanimous, {args.items - n_unanimous:,} disputed (loaded with COPY in {load_s:.1f} s); "
            f"accept_threshold {args.accept_threshold}",
        ),
        ("machine", f"{os.cpu_count()} cores; load average {load_before} before, {os.getloadavg()[0]:.1f} after"),
    ]
    for name, r in zip(
        ("run 1 (backlog: every disputed item to decide)", "run 2 (steady state: nothing new)"), out["runs"]
    ):
        outside = r["total"] - r["cleanlab"]
        rows += [
            (
                name,
                f"{r['scored']:,} scored: {r['accepted']:,} accepted, {r['reopened']:,} one more annotation, "
                f"{r['review']:,} to review; mean quality {r['mean_quality']:.3f}; pred_probs {r['source']}",
            ),
            ("  DB read (snapshot)", f"{r['read']:.2f} s"),
            ("  pred_probs", f"{r['pred_probs']:.2f} s"),
            ("  cleanlab (CROWDLAB)", f"{r['cleanlab']:.2f} s"),
            ("  DB write (outcomes, results)", f"{r['write']:.2f} s"),
            ("  run total", f"{r['total']:.2f} s"),
            (
                "  everything but cleanlab",
                f"{outside:.2f} s = {outside / r['cleanlab']:.2f} x cleanlab "
                f"({'meets' if outside < r['cleanlab'] / 2 else 'MISSES'} the < 0.5 x target)",
            ),
            (
                "  peak memory (run process)",
                f"{r['peak_mib']:.0f} MiB ({r['peak_mib'] - out['baseline_mib']:.0f} MiB above the "
                f"{out['baseline_mib']:.0f} MiB of a process with Django and cleanlab loaded)",
            ),
        ]
    rows += [
        (
            f"queue/next, {waiting:,} requests waiting",
            f"{CLAIMS} claims (each opens a requested item): "
            f"p50 {claims[len(claims) // 2] * 1000:.1f} ms, "
            f"p99 {claims[int(len(claims) * 0.99)] * 1000:.1f} ms, "
            f"max {claims[-1] * 1000:.1f} ms",
        ),
        (
            "review/next, same requests waiting",
            f"{review_pending[0] * 1000:.0f} ms ({'a lease' if review_pending[1] else 'nothing to review'}); "
            f"review queue size {review_pending[2]:,} counted in {review_pending[3] * 1000:.0f} ms",
        ),
        (
            "project list, same requests waiting",
            f"{listed[0] * 1000:.0f} ms (counts: {listed[1]:,} open, {listed[2]:,} disputed)",
        ),
        ("review/next (new lease)", f"{lease_s * 1000:.0f} ms; held lease again {held_s * 1000:.0f} ms"),
        (
            "agreement read",
            f"{agreement_s:.2f} s (alpha {agreement['krippendorff_alpha']:.3f}, "
            f"{len(agreement['pairwise_cohen_kappa'])} annotator pairs)",
        ),
        ("annotators read", f"{annotators_s:.2f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'quality run benchmark':<{width}} | figure")
    print(f"{'-' * width}-|-{'-' * 60}")
    for k, v in rows:
        print(f"{k:<{width}} | {v}")


if __name__ == "__main__":
    main()
