"""Claiming the next item (labeling.services.queue.claim), on PostgreSQL (the `postgres` fixtures
skip elsewhere and fail under CI=true). The helpers here are shared by the other queue tests."""

import json
import random
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.errors import Conflict
from labeling.models import Annotation, Assignment, AssignmentStatus, Item, ItemStatus
from labeling.services.annotations import annotation_submit
from labeling.services.queue import claim as claim_service
from labeling.services.queue.claim import MAX_HELD_LEASES, TOUCHED_WINDOW, assignment_claim_next, eligible_items
from labeling.services.queue.leases import assignment_skip
from labeling.services.queue.maintenance import counters_reconcile
from tests.labeling.factories import ItemFactory, annotators, bulk_items, queue_project


def claim(project, user, **kw):
    return assignment_claim_next(project=project, annotator=user, **kw)


def submit(c, user, label="pos", **kw):
    return annotation_submit(assignment_id=c.assignment_id, annotator=user, label=label, **kw)


def slots_taken(item, now=None):
    now = now or timezone.now()
    active = Assignment.objects.filter(item=item, status=AssignmentStatus.ACTIVE, expires_at__gt=now).count()
    counted = Annotation.objects.filter(item=item, is_surplus=False).count()
    return active + counted


@pytest.mark.django_db
def test_a_held_lease_is_returned_again_and_a_reload_burns_nothing(postgres):
    project, items = queue_project(items=3)
    (ann,) = annotators(project, 1)
    first = claim(project, ann)
    again = claim(project, ann)
    assert (again.assignment_id, again.item_id, again.reused) == (first.assignment_id, first.item_id, True)
    assert Assignment.objects.filter(annotator=ann).count() == 1


@pytest.mark.django_db
def test_exclude_gives_a_lease_ahead_and_holding_is_capped(postgres):
    project, _ = queue_project(items=6)
    (ann,) = annotators(project, 1)
    held = [claim(project, ann)]
    for _ in range(MAX_HELD_LEASES - 1):
        held.append(claim(project, ann, exclude=[c.assignment_id for c in held]))
    assert len({c.item_id for c in held}) == MAX_HELD_LEASES
    # Without exclude the oldest lease comes back; excluding all of them is refused, not a 4th lease.
    assert claim(project, ann).assignment_id == held[0].assignment_id
    with pytest.raises(Conflict) as exc:
        claim(project, ann, exclude=[c.assignment_id for c in held])
    assert exc.value.code == "too_many_leases"
    assert Assignment.objects.filter(annotator=ann).count() == MAX_HELD_LEASES


@pytest.mark.django_db
def test_an_annotator_never_gets_an_item_twice_and_slots_are_never_exceeded(postgres):
    project, items = queue_project(items=4, overlap=2)
    users = annotators(project, 5)
    seen = {u.pk: [] for u in users}
    for _ in range(3):
        for u in users:
            c = claim(project, u)
            if c is None:
                continue
            seen[u.pk].append(c.item_id)
            if random.random() < 0.7:
                submit(c, u)
            else:
                assignment_skip(assignment_id=c.assignment_id, annotator=u)
            for item in items:
                assert slots_taken(item) <= 2
    for item_ids in seen.values():
        assert len(item_ids) == len(set(item_ids))


@pytest.mark.django_db
def test_a_lease_on_an_item_closed_elsewhere_is_not_returned(postgres):
    project, (a_item, b_item) = queue_project(items=2)
    (ann,) = annotators(project, 1)
    c = claim(project, ann)
    Item.objects.filter(pk=c.item_id).update(status=ItemStatus.RESOLVED)  # e.g. ground truth imported
    nxt = claim(project, ann)
    assert nxt.item_id != c.item_id and not nxt.reused


def _drain_order(project, user):
    got = []
    while True:
        c = claim(project, user)
        if c is None:
            return got
        got.append(c.item_id)
        assignment_skip(assignment_id=c.assignment_id, annotator=user)


@pytest.mark.django_db
@pytest.mark.parametrize("order", ["fifo", "priority", "uncertainty", "oldest_prediction"])
def test_queue_order_with_ties_to_items_closest_to_completion_and_reopened_first(postgres, order):
    now = timezone.now()
    project, _ = queue_project(order=order, overlap=3)
    early, late = now - timedelta(hours=2), now - timedelta(hours=1)
    spec = {  # name: (priority, uncertainty, first_predicted_at, created_at)
        "p2": (2, 0.1, late, early),
        "p0": (0, 0.9, early, late),
        "p1_done1": (1, None, None, early),
        "p1": (1, None, None, early),
        "p1_done2": (1, None, None, early),
    }
    made = {}
    for name, (prio, unc, fpa, created) in spec.items():
        item = ItemFactory(project=project, priority=prio, uncertainty=unc, first_predicted_at=fpa)
        Item.objects.filter(pk=item.pk).update(created_at=created)
        made[name] = item.pk
    others = annotators(project, 2)
    for who, name in ((others[0], "p1_done1"), (others[0], "p1_done2"), (others[1], "p1_done2")):
        c = assignment_claim_next(project=project, annotator=who)
        while c.item_id != made[name]:  # walk to the item we want that annotator to label
            assignment_skip(assignment_id=c.assignment_id, annotator=who)
            c = assignment_claim_next(project=project, annotator=who)
        submit(c, who)
    reopened = ItemFactory(project=project)
    reopened_low = ItemFactory(project=project)
    Item.objects.filter(pk=reopened.pk).update(reopen_rank=0.5)
    Item.objects.filter(pk=reopened_low.pk).update(reopen_rank=0.1)

    (fresh_eyes,) = annotators(project, 1)
    got = _drain_order(project, fresh_eyes)
    names = {v: k for k, v in made.items()}
    head = [reopened_low.pk, reopened.pk]
    rest = [names.get(i) for i in got[2:]]
    expected = {
        # created_at asc; the three p1 items were created together with p2: closest to completion first
        "fifo": ["p1_done2", "p1_done1", "p2", "p1", "p0"],
        "priority": ["p2", "p1_done2", "p1_done1", "p1", "p0"],
        "uncertainty": ["p0", "p2", "p1_done2", "p1_done1", "p1"],  # nulls last
        "oldest_prediction": ["p0", "p2", "p1_done2", "p1_done1", "p1"],  # nulls last
    }[order]
    assert got[:2] == head
    assert rest == expected
    # The portable reference query agrees with the PostgreSQL path on the same state.
    assert [
        i.pk for i in eligible_items(project=project, annotator=annotators(project, 1)[0], now=timezone.now())
    ] == got


@pytest.mark.django_db
def test_postgres_path_matches_the_reference_query_on_random_states(postgres):
    rng = random.Random(3)
    for order in ("fifo", "priority", "uncertainty", "oldest_prediction"):
        project, items = queue_project(items=0, overlap=3, order=order)
        bulk_items(project, 150, prefix=order)
        Item.objects.filter(
            project=project, pk__in=list(Item.objects.filter(project=project).values_list("pk", flat=True)[:10])
        ).update(reopen_rank=0.3)
        users = annotators(project, 6)
        now = timezone.now()
        for _ in range(200):
            u = rng.choice(users)
            c = claim(project, u)
            if c is None:
                continue
            r = rng.random()
            if r < 0.6:
                submit(c, u, label=rng.choice(["pos", "neg"]))
            elif r < 0.75:
                assignment_skip(assignment_id=c.assignment_id, annotator=u)
            elif r < 0.85:
                Assignment.objects.filter(pk=c.assignment_id).update(expires_at=now - timedelta(seconds=5))
            # else: keep holding it
        for u in users + annotators(project, 1):
            expected = (
                eligible_items(project=project, annotator=u, now=timezone.now()).values_list("pk", flat=True).first()
            )
            row = claim_service._find(project=project, me=u.pk, now=timezone.now(), lock=False)
            assert (row["id"] if row else None) == expected, (order, u.pk)


@pytest.mark.django_db
def test_own_waiting_items_filling_the_head_do_not_hide_others_work(postgres, django_assert_max_num_queries):
    """An annotator whose own labelled items (waiting for a 2nd and 3rd opinion) fill the head of the
    order still gets, in order, the item another annotator started; without walking their own items."""
    project, _ = queue_project(overlap=3)
    bulk_items(project, 3 * TOUCHED_WINDOW)
    me, other = annotators(project, 2)
    ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    mine, others = ids[: 2 * TOUCHED_WINDOW], ids[2 * TOUCHED_WINDOW : 2 * TOUCHED_WINDOW + 3]
    now = timezone.now()
    Assignment.objects.bulk_create(
        [Assignment(item_id=i, annotator=me, status=AssignmentStatus.SUBMITTED, expires_at=now) for i in mine]
        + [Assignment(item_id=i, annotator=other, status=AssignmentStatus.SUBMITTED, expires_at=now) for i in others]
    )
    Annotation.objects.bulk_create(
        [Annotation(project_id=project.pk, item_id=i, annotator=me, label="pos") for i in mine]
        + [Annotation(project_id=project.pk, item_id=i, annotator=other, label="pos") for i in others]
    )
    Item.objects.filter(pk__in=mine).update(annotation_count=1, touchers=[me.pk])
    Item.objects.filter(pk__in=others).update(annotation_count=1, touchers=[other.pk])
    expected = eligible_items(project=project, annotator=me, now=timezone.now()).values_list("pk", flat=True).first()
    with django_assert_max_num_queries(10):
        c = claim(project, me)
    assert c.item_id == others[0] == expected  # count 1 beats the fresh items; my own are skipped


@pytest.mark.django_db
def test_claim_plan_uses_the_queue_indexes_not_a_table_scan(postgres):
    project, _ = queue_project(overlap=3, order="priority")
    bulk_items(project, 20_000)
    (ann,) = annotators(project, 1)
    claim(project, ann)
    with CaptureQueriesContext(connection) as q:
        claim_service._find(project=project, me=ann.pk, now=timezone.now(), lock=False)
    sql = q.captured_queries[0]["sql"]
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        plan = cur.fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)

    def nodes(n):
        yield n
        for child in n.get("Plans", []):
            yield from nodes(child)

    all_nodes = list(nodes(plan[0]["Plan"]))
    assert not [n for n in all_nodes if n["Node Type"] == "Seq Scan"]
    used = {n.get("Index Name") for n in all_nodes}
    assert {"item_q_fresh", "item_q_touched"} <= used
    scanned = sum(n.get("Actual Rows", 0) for n in all_nodes if n.get("Index Name", "").startswith("item_q_"))
    assert scanned <= claim_service.FRESH_WINDOW + TOUCHED_WINDOW


def run_threads(target, args_list):
    errors = []

    def wrap(*args):
        try:
            target(*args)
        except BaseException as exc:  # reported by the test
            errors.append(repr(exc))
        finally:
            connection.close()
            connection.close()

    threads = [threading.Thread(target=wrap, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return errors


@pytest.mark.django_db(transaction=True)
def test_32_annotators_drain_500_items_with_overlap_3(postgres_tx):
    project, _ = queue_project(overlap=3)
    bulk_items(project, 500)
    users = annotators(project, 32)
    labels_by_user = {u.pk: random.Random(u.pk).choice(["pos", "neg"]) for u in users}
    stats = Counter()
    lock = threading.Lock()

    def work(user):
        while True:
            c = assignment_claim_next(project=project, annotator=user)
            if c is None:
                return
            annotation_submit(assignment_id=c.assignment_id, annotator=user, label=labels_by_user[user.pk])
            with lock:
                stats["submits"] += 1

    errors = run_threads(work, [(u,) for u in users])
    assert errors == []
    per_item = Counter(Annotation.objects.filter(item__project=project).values_list("item_id", flat=True))
    assert len(per_item) == 500 and set(per_item.values()) == {3}
    pairs = Annotation.objects.filter(item__project=project).values_list("item_id", "annotator_id")
    assert len(set(pairs)) == 1500  # 3 different annotators per item
    assert not Annotation.objects.filter(item__project=project, is_surplus=True).exists()
    assert stats["submits"] == 1500
    assert not Item.objects.filter(project=project, status=ItemStatus.OPEN).exists()
    assert set(Item.objects.filter(project=project).values_list("annotation_count", flat=True)) == {3}
    assert counters_reconcile(project_id=project.pk).counts_fixed == 0


def claims_at_once(project, users) -> list:
    """Each user asks for their next item at the same moment (one thread each); their claims."""
    got = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(users))

    def work(user):
        barrier.wait()
        c = assignment_claim_next(project=project, annotator=user)
        with lock:
            got.append(c)

    assert run_threads(work, [(u,) for u in users]) == []
    return got


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_on_the_last_slots_never_share_one(postgres_tx):
    """Many annotators race for a few slots: each slot goes to exactly one; nobody is told 'empty'
    while a slot they could take is still free."""
    project, items = queue_project(items=3, overlap=2)
    users = annotators(project, 16)
    got = claims_at_once(project, users)
    claimed = [c for c in got if c is not None]
    assert len(claimed) == 6  # 3 items x 2 slots, all taken
    assert Counter(c.item_id for c in claimed) == {i.pk: 2 for i in items}


@pytest.mark.django_db(transaction=True)
def test_an_item_locked_elsewhere_is_waited_for_never_reported_as_empty(postgres_tx):
    """SKIP LOCKED skips a row another transaction holds; the claim must then wait for it rather than
    answer 'nothing left' while the item still has a free slot."""
    project, (item,) = queue_project(items=1, overlap=2)
    (a,) = annotators(project, 1)
    locked, release, result = threading.Event(), threading.Event(), {}

    def hold():
        with transaction.atomic():
            Item.objects.select_for_update().get(pk=item.pk)  # e.g. another annotator submitting
            locked.set()
            release.wait(30)

    def claimer():
        result["claim"] = assignment_claim_next(project=project, annotator=a)

    holder = threading.Thread(target=lambda: _closing(hold))
    holder.start()
    assert locked.wait(10)
    waiter = threading.Thread(target=lambda: _closing(claimer))
    waiter.start()
    deadline = time.monotonic() + 20
    while waiter.is_alive() and time.monotonic() < deadline and not _someone_waits_for_a_lock():
        time.sleep(0.02)  # polling a condition, not timing
    release.set()
    holder.join()
    waiter.join()
    assert result["claim"] is not None and result["claim"].item_id == item.pk


def _closing(fn):
    try:
        fn()
    finally:
        connection.close()


def _someone_waits_for_a_lock():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cur.fetchone()[0] > 0


@pytest.mark.django_db
def test_portable_path_follows_the_same_rules(user, monkeypatch):
    """The ORM path (SQLite demo) on whatever database runs the suite."""
    monkeypatch.setattr(claim_service, "is_postgres", lambda: False)
    project, items = queue_project(items=2, overlap=1)
    a, b = annotators(project, 2)
    ca = claim(project, a)
    assert claim(project, a).assignment_id == ca.assignment_id
    cb = claim(project, b)
    assert cb.item_id != ca.item_id
    assert claim(project, annotators(project, 1)[0]) is None
    assert Item.objects.get(pk=ca.item_id).touchers == [a.pk]
