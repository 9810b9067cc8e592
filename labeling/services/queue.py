"""Annotator task queues: leases (Assignment, kind "annotate") on open items, under concurrency.

Rules (each has a test on PostgreSQL in tests/labeling/services/test_queue.py):
- A slot of an item is taken by an annotation or by an ACTIVE lease whose expires_at is in the future.
  An expired lease frees its slot at once, with no job run; `assignments_expire` (a periodic task)
  only marks such leases "expired" so that stored states and dashboards stay right.
- An annotator never gets an item twice: the unique (item, annotator, kind) constraint guards it,
  a skipped or expired lease keeps its row, and Item.touchers lists everyone who ever held a lease.
- Claiming is ONE transaction: lock the annotator's progress row (serialises that annotator's own
  calls), return an unexpired lease they already hold, else pick a candidate with
  SELECT ... FOR UPDATE OF item SKIP LOCKED and insert the lease with a conditional INSERT ... SELECT
  that recounts the item's slots in a new statement while holding the item's row lock. Every
  writer that takes a slot holds that row lock, so the recount sees them all: never count-then-insert.
- Order: reopened items first (lowest reopen_rank), then the project's queue_order, ties to the items
  closest to completion (annotation_count desc), then id.
- A quality run's requests for one more annotation (ReopenRequest) wait outside the item rows. Each
  claim first opens the best-ranked request this annotator may take (_open_requested: the item
  becomes open with one more required annotation and reopen_rank = the request's rank), so the
  claim that follows serves it in the order above. Opening costs one UPDATE of one item per claim
  instead of a run rewriting 170,000 items at once.

Why the cost does not grow with the project, nor with how much this annotator has done already
(PostgreSQL path):
- Open items live in two partial indexes, the same for every ordering (see QueueKey in
  labeling.models.core): "fresh" (touchers IS NULL: nobody ever held a lease, so every one is
  eligible) and "touched". The first fresh item in order is one index probe.
- Touched items are examined in order only within a small window (TOUCHED_WINDOW rows). The head of
  that order is usually what others lease right now or items this annotator already did (they wait
  for other annotators and sit first because they are closest to completion). When the window holds
  no eligible item, the claim does not walk the rest: it enumerates the distinct `touchers` sets of
  open touched items (a loose index scan on item_q_groups, one probe per set), keeps the sets that do
  not contain this annotator and takes the first free item among them. An annotator who labelled
  100,000 items that wait for a second opinion therefore costs a handful of index probes, not 100,000.
- SKIP LOCKED never waits. If everything was skipped because it was locked, a plain read checks
  whether an eligible item exists; if so the claim waits for that one row lock (holding no other item
  lock, so no deadlock) and re-verifies; a spurious "nothing left" is never answered.

Other backends (SQLite, the zero-setup demo) use one portable ORM query; their write transactions
are serialised (BEGIN IMMEDIATE), so no row locks are needed there.
"""

import json
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone as dt_timezone

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.errors import Conflict, NotFound
from labeling.models import (
    Annotation,
    AnnotatorProgress,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    Project,
    QueueOrder,
    REOPEN_VALID_SQL,
    ReopenRequest,
)
from labeling.models.core import QUEUE_KEY_SQL, TOUCHERS_KEY_SQL

logger = logging.getLogger(__name__)

ANNOTATE = AssignmentKind.ANNOTATE
# Leases one annotator may hold in a project at once: the item on screen, the one fetched ahead,
# and one whose submission is still being retried by the page.
MAX_HELD_LEASES = 3
FRESH_WINDOW = 32
TOUCHED_WINDOW = 64
TOUCHED_CANDIDATES = 8  # eligible touched rows kept from the window, in order (the rest may be locked)
MAX_ATTEMPTS = 10

_BUCKET_SQL = {
    QueueOrder.FIFO: "{a}created_at ASC",
    QueueOrder.PRIORITY: "{a}priority DESC",
    QueueOrder.UNCERTAINTY: "{a}uncertainty DESC NULLS LAST",
    QueueOrder.OLDEST_PREDICTION: "{a}first_predicted_at ASC NULLS LAST",
}
_BUCKET_ORM = {
    QueueOrder.FIFO: F("created_at").asc(),
    QueueOrder.PRIORITY: F("priority").desc(),
    QueueOrder.UNCERTAINTY: F("uncertainty").desc(nulls_last=True),
    QueueOrder.OLDEST_PREDICTION: F("first_predicted_at").asc(nulls_last=True),
}
_EPOCH = datetime(1, 1, 1, tzinfo=dt_timezone.utc)
_KEY_COLUMNS = "id, touchers, reopen_rank, created_at, priority, uncertainty, first_predicted_at, annotation_count"


def queue_order_sql(order: str, alias: str = "") -> str:
    """ORDER BY of the queue (PostgreSQL); matches the item_q_fresh / item_q_touched indexes in
    labeling.models.core. `order` is the project's ordering: each open item carries it (queue_order),
    and QUEUE_KEY_SQL turns it into one number, so the SQL is the same for every ordering."""
    a = f"{alias}." if alias else ""
    return f"{a}reopen_rank ASC NULLS LAST, {QUEUE_KEY_SQL.format(a=a)} ASC NULLS LAST, {a}annotation_count DESC, {a}id ASC"


def queue_order_by(order: str) -> list:
    """The same order for the ORM."""
    return [F("reopen_rank").asc(nulls_last=True), _BUCKET_ORM[order], F("annotation_count").desc(), F("id").asc()]


def _sort_key(row: dict, order: str) -> tuple:
    """Python twin of queue_order_sql, to compare candidates found by different index scans."""
    rr = row["reopen_rank"]
    head = (rr is None, rr if rr is not None else 0.0)
    if order == QueueOrder.FIFO:
        bucket = (row["created_at"],)
    elif order == QueueOrder.PRIORITY:
        bucket = (-row["priority"],)
    elif order == QueueOrder.UNCERTAINTY:
        u = row["uncertainty"]
        bucket = (u is None, -(u or 0.0))
    else:
        f = row["first_predicted_at"]
        bucket = (f is None, f or _EPOCH)
    return head + bucket + (-row["annotation_count"], row["id"])


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return json.loads(value)
    return list(value)


@dataclass(frozen=True)
class Claim:
    assignment_id: int
    expires_at: datetime
    item_id: int
    external_id: str
    payload: dict
    reused: bool  # an unexpired lease the annotator already held
    done_by_me: int = 0  # the annotator's submissions in the project (from their progress row)
    done_today: int = 0


@dataclass(frozen=True)
class _Attempt:
    claim: Claim | None = None
    retry: bool = False
    wait_for: int | None = None


# ---------------------------------------------------------------------------------------------
# claim


def assignment_claim_next(*, project: Project, annotator, exclude=(), now: datetime | None = None) -> Claim | None:
    """The lease the annotator should work on next, or None when nothing is left for them.

    An unexpired lease they already hold in this project (and that is not in `exclude`, the leases
    a page already has in hand) is returned as is: a reload never burns items. Otherwise the next
    eligible item is leased for project.lease_seconds. Raises Conflict when the annotator already
    holds MAX_HELD_LEASES leases.
    """
    exclude = frozenset(int(x) for x in exclude)
    wait_for = None
    for _ in range(MAX_ATTEMPTS):
        attempt = _claim_attempt(project=project, annotator=annotator, exclude=exclude,
                                 now=now or timezone.now(), wait_for=wait_for)
        if attempt.claim is not None:
            return attempt.claim
        if not attempt.retry:
            return None
        wait_for = attempt.wait_for
    # Every attempt lost its candidate to a concurrent claim: the queue is moving, so try once more
    # without waiting for a particular item before giving up.
    attempt = _claim_attempt(project=project, annotator=annotator, exclude=exclude, now=now or timezone.now(), wait_for=None)
    if attempt.claim is None and attempt.retry:
        raise Conflict("The queue is very busy right now; try again.", code="queue_busy")
    return attempt.claim


@transaction.atomic
def _claim_attempt(*, project, annotator, exclude, now, wait_for) -> _Attempt:
    done, today = _progress_touch(project_id=project.pk, annotator_id=annotator.pk, now=now)
    held = _held_leases(project=project, annotator=annotator, now=now)
    for a_id, expires_at, item_id, ext, payload in held:
        if a_id not in exclude:
            return _Attempt(claim=Claim(a_id, expires_at, item_id, ext, _payload(payload), True, done, today))
    if len(held) >= MAX_HELD_LEASES:
        raise Conflict(
            f"You already hold {len(held)} leases in this project; submit or skip one first.", code="too_many_leases"
        )
    if wait_for is None:  # (while waiting for one item's lock, hold no other)
        _open_requested(project=project, me=annotator.pk, now=now)
    if connection.vendor != "postgresql":
        return _with_progress(_claim_portable(project=project, annotator=annotator, now=now), done, today)

    me = annotator.pk
    with connection.cursor() as cur:
        if wait_for is not None:
            row = _lock_one(cur, wait_for)  # waits for that row lock: the only item lock held here
        else:
            row = _find_and_lock(cur, project=project, me=me, now=now)
        if row is None:
            if wait_for is not None:
                return _Attempt(retry=True)
            probe = _find(cur, project=project, me=me, now=now, lock=False)
            if probe is None:
                return _Attempt()  # nothing eligible, locked or not
            return _Attempt(retry=True, wait_for=probe["id"])
        claim = _take(cur, row=row, me=me, now=now, expires_at=now + timedelta(seconds=project.lease_seconds))
        if claim is None:
            return _Attempt(retry=True)
        return _with_progress(_Attempt(claim=claim), done, today)


REQUEST_WINDOW = 32  # requests examined per claim, best rank first
REQUEST_REACH = 2000  # ... and at most this many when none of those is for this annotator


def _open_requested(*, project, me: int, now: datetime) -> int | None:
    """Open the best-ranked item a quality run asked one more annotation of (ReopenRequest) that this
    annotator may annotate: the item becomes open (required_annotations + 1, reopen_rank = the
    request's rank, the project's queue_order), so the claim that follows finds it, in queue order,
    among the other open items. Requests found stale on the way are dropped. Returns the opened
    item's id, or None.

    The request rows are taken with SKIP LOCKED (concurrent claims open different items, none
    waits), and the item only if it is still exactly as requested."""
    if connection.vendor != "postgresql":
        return _open_requested_portable(project=project, me=me, now=now)
    requests, items = ReopenRequest._meta.db_table, _ITEM
    valid = REOPEN_VALID_SQL.format(i="i", r="r")
    params = {"p": project.pk, "order": project.queue_order, "now": now}
    with connection.cursor() as cur:
        for reach in (REQUEST_WINDOW, REQUEST_REACH):
            # The head of the requests in rank order (walked on reopen_request_head), with what the
            # claim needs to know of each item.
            cur.execute(
                f"""SELECT r.item_id, coalesce({valid}, false) AS valid, coalesce(i.touchers, '[]') AS touchers
                    FROM (SELECT * FROM {requests} WHERE project_id = %(p)s ORDER BY rank, item_id LIMIT %(n)s) r
                    LEFT JOIN {items} i ON i.id = r.item_id ORDER BY r.rank, r.item_id""",
                {**params, "n": reach},
            )
            head = cur.fetchall()
            stale = [item_id for item_id, ok, _ in head if not ok]
            if stale:
                cur.execute(f"DELETE FROM {requests} r WHERE r.item_id = ANY(%s) AND NOT EXISTS "
                            f"(SELECT 1 FROM {items} i WHERE i.id = r.item_id AND {valid})", [stale])
            mine = [item_id for item_id, ok, touchers in head if ok and me not in _as_list(touchers)]
            if mine:
                break
            if len(head) < REQUEST_WINDOW:
                return None  # every request was looked at
        if not mine:
            return None  # this annotator labelled every item in reach: the others' claims open those
        cur.execute(
            f"""WITH req AS (
                    DELETE FROM {requests} WHERE item_id = (
                        SELECT item_id FROM {requests} WHERE item_id = ANY(%(ids)s) ORDER BY rank, item_id
                        LIMIT 1 FOR UPDATE SKIP LOCKED)
                    RETURNING item_id, rank, required, count)
                UPDATE {items} i SET status = 'open', required_annotations = i.required_annotations + 1,
                    reopen_rank = r.rank, queue_order = %(order)s, updated_at = %(now)s
                FROM req r WHERE i.id = r.item_id AND {valid}
                RETURNING i.id""",
            {**params, "ids": mine},
        )
        row = cur.fetchone()
    return row[0] if row else None


def _open_requested_portable(*, project, me: int, now: datetime) -> int | None:
    """The same with the ORM (SQLite, whose write transactions are serialised: no row locks)."""
    head = ReopenRequest.objects.filter(project_id=project.pk).order_by("rank", "item_id")
    valid = set(head.valid().values_list("item_id", flat=True)[:REQUEST_REACH])
    stale, opened = [], None
    for request in head.select_related("item")[:REQUEST_REACH]:
        if request.item_id not in valid:
            stale.append(request.item_id)
        elif me not in _as_list(request.item.touchers):
            opened = request
            break
    ReopenRequest.objects.filter(item_id__in=stale).delete()  # (the stale ones met on the way, in one query)
    if opened is None:
        return None
    Item.objects.filter(pk=opened.item_id).update(
        status=ItemStatus.OPEN, required_annotations=F("required_annotations") + 1, reopen_rank=opened.rank,
        queue_order=project.queue_order, updated_at=now,
    )
    opened.delete()
    return opened.item_id


def _held_leases(*, project, annotator, now) -> list[tuple]:
    """The annotator's unexpired leases on open items of the project: (id, expires_at, item id,
    external_id, payload), oldest first."""
    if connection.vendor != "postgresql":
        return list(
            Assignment.objects.filter(
                annotator=annotator, kind=ANNOTATE, status=AssignmentStatus.ACTIVE, expires_at__gt=now,
                item__project_id=project.pk, item__status=ItemStatus.OPEN,
            )
            .order_by("id")
            .values_list("id", "expires_at", "item_id", "item__external_id", "item__payload")
        )
    with connection.cursor() as cur:  # plain SQL on the hot path of every claim (no ORM compiling)
        cur.execute(
            f"""SELECT a.id, a.expires_at, i.id, i.external_id, i.payload FROM {_ASSIGNMENT} a
                JOIN {_ITEM} i ON i.id = a.item_id
                WHERE a.annotator_id = %s AND a.kind = %s AND a.status = %s AND a.expires_at > %s
                  AND i.project_id = %s AND i.status = %s ORDER BY a.id""",
            [annotator.pk, ANNOTATE, AssignmentStatus.ACTIVE, now, project.pk, ItemStatus.OPEN],
        )
        return cur.fetchall()


def _with_progress(attempt: _Attempt, done: int, today: int) -> _Attempt:
    if attempt.claim is None:
        return attempt
    return _Attempt(claim=replace(attempt.claim, done_by_me=done, done_today=today))


def _payload(value):
    return json.loads(value) if isinstance(value, str) else value


def _progress_touch(*, project_id: int, annotator_id: int, now: datetime) -> tuple[int, int]:
    """Create or lock the annotator's progress row: serialises one annotator's concurrent claims.
    Returns (submissions in the project, submissions today)."""
    table = AnnotatorProgress._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {table} (project_id, annotator_id, submitted, skipped, day, day_submitted, last_claim_at)
                VALUES (%s, %s, 0, 0, NULL, 0, %s)
                ON CONFLICT (project_id, annotator_id) DO UPDATE SET last_claim_at = EXCLUDED.last_claim_at
                RETURNING submitted, day, day_submitted""",
            [project_id, annotator_id, now],
        )
        submitted, day, day_submitted = cur.fetchone()
    if isinstance(day, str):  # SQLite returns dates as text from raw SQL
        day = date.fromisoformat(day)
    return submitted, (day_submitted if day == now.date() else 0)


_ITEM = Item._meta.db_table
_GROUP_KEY = TOUCHERS_KEY_SQL  # the item_q_groups index's key: the loose scan walks it
_ASSIGNMENT = Assignment._meta.db_table
_ANNOTATION = Annotation._meta.db_table
_ACTIVE_SLOTS = (
    f"(SELECT count(*) FROM {_ASSIGNMENT} a WHERE a.item_id = {{alias}}.id AND a.kind = 'annotate' "
    f"AND a.status = 'active' AND a.expires_at > %(now)s)"
)


def _rows(cur) -> list[dict]:
    cols = [c.name for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _find_and_lock(cur, *, project, me, now):
    return _find(cur, project=project, me=me, now=now, lock=True)


def _find(cur, *, project, me, now, lock):
    """The first eligible item in queue order (locked with SKIP LOCKED when `lock`), or None."""
    order = project.queue_order
    params = {"p": project.pk, "me": json.dumps([me]), "now": now, "fw": FRESH_WINDOW, "tw": TOUCHED_WINDOW,
              "tc": TOUCHED_CANDIDATES}
    lock_sql = "FOR UPDATE OF i SKIP LOCKED" if lock else ""
    # 1. The heads of both indexes: FRESH_WINDOW fresh items, TOUCHED_WINDOW touched ones.
    cur.execute(
        f"""WITH tw AS MATERIALIZED (
                SELECT id, touchers, annotation_count, required_annotations,
                       row_number() OVER (ORDER BY {queue_order_sql(order)}) AS rn
                FROM {_ITEM}
                WHERE project_id = %(p)s AND status = 'open' AND touchers IS NOT NULL
                ORDER BY {queue_order_sql(order)} LIMIT %(tw)s)
            SELECT i.{_KEY_COLUMNS.replace(', ', ', i.')}, (SELECT count(*) FROM tw) AS touched_seen
            FROM {_ITEM} i
            WHERE i.id IN (
                (SELECT id FROM {_ITEM} WHERE project_id = %(p)s AND status = 'open' AND touchers IS NULL
                 ORDER BY {queue_order_sql(order)} LIMIT %(fw)s)
                UNION ALL
                (SELECT tw.id FROM tw WHERE NOT tw.touchers @> %(me)s::jsonb
                   AND tw.annotation_count + {_ACTIVE_SLOTS.format(alias='tw')} < tw.required_annotations
                 ORDER BY tw.rn LIMIT %(tc)s)
            )
            AND i.status = 'open' AND (i.touchers IS NULL OR NOT i.touchers @> %(me)s::jsonb)
            ORDER BY {queue_order_sql(order, 'i')}
            LIMIT 1 {lock_sql}""",
        params,
    )
    found = _rows(cur)
    if found and (found[0]["touchers"] is not None or found[0]["touched_seen"] < TOUCHED_WINDOW):
        # A touched item from the window beats every touched item beyond it; a fresh one does too
        # when the window held all touched items.
        return found[0]
    # 2. Beyond the windows: an annotator whose own items (waiting for others) fill the head of the
    #    touched order, or heavy contention. Compare the first fresh item (skipping locked ones) with
    #    the first free item among the touched groups this annotator is not part of.
    candidates = list(found)
    if not found:
        cur.execute(
            f"""SELECT {_KEY_COLUMNS} FROM {_ITEM} i
            WHERE project_id = %(p)s AND status = 'open' AND touchers IS NULL
            ORDER BY {queue_order_sql(order)} LIMIT 1 {lock_sql}""",
            params,
        )
        candidates += _rows(cur)
    cur.execute(
        f"""WITH RECURSIVE g(t) AS (
                (SELECT {_GROUP_KEY} FROM {_ITEM} WHERE project_id = %(p)s AND status = 'open' AND touchers IS NOT NULL
                 ORDER BY {_GROUP_KEY} LIMIT 1)
                UNION ALL
                SELECT (SELECT {_GROUP_KEY} FROM {_ITEM} WHERE project_id = %(p)s AND status = 'open'
                        AND touchers IS NOT NULL AND {_GROUP_KEY} > g.t ORDER BY {_GROUP_KEY} LIMIT 1)
                FROM g WHERE g.t IS NOT NULL
            )
            SELECT t FROM g WHERE t IS NOT NULL AND NOT t::jsonb @> %(me)s::jsonb""",
        params,
    )
    groups = [r[0] for r in cur.fetchall()]
    if groups:
        cur.execute(
            f"""SELECT {_KEY_COLUMNS} FROM {_ITEM} i
                WHERE project_id = %(p)s AND status = 'open' AND touchers IS NOT NULL
                  AND touchers = ANY(%(groups)s::jsonb[])
                  AND annotation_count + {_ACTIVE_SLOTS.format(alias='i')} < required_annotations
                ORDER BY {queue_order_sql(order)} LIMIT 1 {lock_sql}""",
            {**params, "groups": groups},
        )
        candidates += _rows(cur)
    if not candidates:
        return None
    return min(candidates, key=lambda r: _sort_key(r, order))


def _lock_one(cur, item_id):
    cur.execute(f"SELECT {_KEY_COLUMNS} FROM {_ITEM} i WHERE id = %s AND status = 'open' FOR UPDATE", [item_id])
    found = _rows(cur)
    return found[0] if found else None


def _take(cur, *, row, me, now, expires_at) -> Claim | None:
    """Insert the lease if the locked item still has a free slot (recounted in this new statement)."""
    touchers = _as_list(row["touchers"])
    if me in touchers:
        return None
    new_touchers = json.dumps(sorted(set(touchers) | {me}))
    cur.execute(
        f"""WITH ok AS (
                SELECT i.id FROM {_ITEM} i
                WHERE i.id = %(item)s AND i.status = 'open'
                  AND i.annotation_count + {_ACTIVE_SLOTS.format(alias='i')} < i.required_annotations
                  AND NOT EXISTS (SELECT 1 FROM {_ANNOTATION} n WHERE n.item_id = i.id AND n.annotator_id = %(me)s)
            ), ins AS (
                INSERT INTO {_ASSIGNMENT} (item_id, annotator_id, kind, status, created_at, expires_at, finished_at, skip_reason)
                SELECT id, %(me)s, 'annotate', 'active', %(now)s, %(exp)s, NULL, '' FROM ok
                ON CONFLICT (item_id, annotator_id, kind) DO NOTHING
                RETURNING id, item_id, expires_at
            ), upd AS (
                UPDATE {_ITEM} SET touchers = %(touchers)s::jsonb WHERE id IN (SELECT item_id FROM ins)
            )
            SELECT ins.id, ins.expires_at, i.id, i.external_id, i.payload FROM ins JOIN {_ITEM} i ON i.id = ins.item_id""",
        {"item": row["id"], "me": me, "now": now, "exp": expires_at, "touchers": new_touchers},
    )
    got = cur.fetchone()
    if got is None:
        _heal_touchers(cur, item_id=row["id"], me=me, new_touchers=new_touchers)
        return None
    return Claim(got[0], got[1], got[2], got[3], _payload(got[4]), reused=False)


def _heal_touchers(cur, *, item_id, me, new_touchers):
    """If the annotator already has a lease or an annotation on the item (written by some other path),
    record them in touchers so the queue stops offering it."""
    cur.execute(
        f"""UPDATE {_ITEM} SET touchers = %(touchers)s::jsonb WHERE id = %(item)s
            AND (EXISTS (SELECT 1 FROM {_ASSIGNMENT} WHERE item_id = %(item)s AND annotator_id = %(me)s AND kind = 'annotate')
                 OR EXISTS (SELECT 1 FROM {_ANNOTATION} WHERE item_id = %(item)s AND annotator_id = %(me)s))""",
        {"item": item_id, "me": me, "touchers": new_touchers},
    )


def eligible_items(*, project: Project, annotator, now: datetime):
    """Open items this annotator may be given now, in queue order (portable ORM; also the reference
    the PostgreSQL path is tested against)."""
    active = (
        Assignment.objects.filter(item=OuterRef("pk"), kind=ANNOTATE, status=AssignmentStatus.ACTIVE, expires_at__gt=now)
        .order_by()
        .values("item")
        .annotate(n=Count("id"))
        .values("n")
    )
    mine = Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator, kind=ANNOTATE)
    mine_done = Annotation.objects.filter(item=OuterRef("pk"), annotator=annotator)
    return (
        Item.objects.filter(project_id=project.pk, status=ItemStatus.OPEN)
        .annotate(active_leases=Coalesce(Subquery(active), Value(0)))
        .filter(~Exists(mine), ~Exists(mine_done))
        .filter(annotation_count__lt=F("required_annotations") - F("active_leases"))
        .order_by(*queue_order_by(project.queue_order))
    )


def _claim_portable(*, project, annotator, now) -> _Attempt:
    item = eligible_items(project=project, annotator=annotator, now=now).only("id", "touchers", "external_id", "payload").first()
    if item is None:
        return _Attempt()
    expires_at = now + timedelta(seconds=project.lease_seconds)
    assignment = Assignment.objects.create(item=item, annotator=annotator, kind=ANNOTATE, expires_at=expires_at)
    touchers = sorted(set(_as_list(item.touchers)) | {annotator.pk})
    Item.objects.filter(pk=item.pk).update(touchers=touchers)
    return _Attempt(claim=Claim(assignment.pk, expires_at, item.pk, item.external_id, item.payload, reused=False))


# ---------------------------------------------------------------------------------------------
# skip, expiry, cancellation


@transaction.atomic
def assignment_skip(*, assignment_id: int, annotator, reason: str = "", now: datetime | None = None) -> Assignment:
    """Give the item back: its slot is free for others at once; it never comes back to this annotator
    (the lease row stays, so the unique constraint and touchers keep it away)."""
    now = now or timezone.now()
    assignment = (
        Assignment.objects.select_for_update()
        .filter(pk=assignment_id, annotator=annotator, kind=ANNOTATE)
        .select_related("item")
        .first()
    )
    if assignment is None:
        raise NotFound("Assignment not found.")
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise Conflict("This assignment was already submitted.", code="already_submitted")
    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("This assignment was already skipped.", code="already_skipped")
    assignment.status = AssignmentStatus.SKIPPED
    assignment.finished_at = now
    assignment.skip_reason = (reason or "")[:2000]
    assignment.save(update_fields=["status", "finished_at", "skip_reason"])
    AnnotatorProgress.objects.filter(project_id=assignment.item.project_id, annotator=annotator).update(
        skipped=F("skipped") + 1
    )
    return assignment


def leases_cancel(*, item_id: int, now: datetime, keep: int = 0) -> int:
    """Mark an item's active leases expired, keeping the `keep` oldest unexpired ones. Call with the
    item's row lock held (its submissions still count as surplus: nothing is lost)."""
    active = Assignment.objects.filter(item_id=item_id, kind=ANNOTATE, status=AssignmentStatus.ACTIVE)
    if keep:
        kept = list(active.filter(expires_at__gt=now).order_by("id").values_list("id", flat=True)[:keep])
        active = active.exclude(pk__in=kept)
    return active.update(status=AssignmentStatus.EXPIRED, finished_at=now)


def assignments_expire(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Mark leases that ran out (or whose item is no longer open) as expired. The queue never needs
    this to free a slot; it keeps the stored states right. Idempotent; skips rows being submitted."""
    now = now or timezone.now()
    total = 0
    stale = Q(expires_at__lte=now) | ~Q(item__status=ItemStatus.OPEN)
    while True:
        with transaction.atomic():
            ids = list(
                Assignment.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(stale, status=AssignmentStatus.ACTIVE)
                .order_by("id")
                .values_list("id", flat=True)[:batch]
            )
            if ids:
                Assignment.objects.filter(pk__in=ids, status=AssignmentStatus.ACTIVE).update(
                    status=AssignmentStatus.EXPIRED, finished_at=now
                )
        total += len(ids)
        if len(ids) < batch:
            break
    if total:
        logger.info("queue: marked %d leases expired", total)
    return total


# ---------------------------------------------------------------------------------------------
# counters


def queue_order_rekey(*, project_id: int, batch: int = 10_000) -> int:
    """Give the project's open items its current queue_order (the queue indexes order by each item's
    copy: see QueueKey), `batch` rows per transaction so that a project with a million open items
    never holds them all locked. Idempotent; returns how many items changed. Runs in a task after
    an ordering change, and in the reconcile task."""
    order = Project.objects.filter(pk=project_id).values_list("queue_order", flat=True).first()
    if order is None:
        return 0
    changed = 0
    while True:
        with transaction.atomic():
            ids = list(
                Item.objects.filter(project_id=project_id, status=ItemStatus.OPEN).exclude(queue_order=order)
                .order_by("pk").values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return changed
            changed += Item.objects.filter(pk__in=ids, status=ItemStatus.OPEN).update(queue_order=order)


@dataclass(frozen=True)
class ReconcileResult:
    items_checked: int
    counts_fixed: int
    touchers_fixed: int
    progress_fixed: int
    order_fixed: int = 0  # open items whose queue_order was not their project's (the queue indexes order by it)


def counters_reconcile(*, project_id: int, batch: int = 1000) -> ReconcileResult:
    """Recompute Item.annotation_count and Item.touchers from the rows they summarise, and each
    annotator's progress counters; log any drift. Locks one batch of items at a time (in primary-key
    order) so that the recount cannot race a submission."""
    checked = counts_fixed = touchers_fixed = 0
    last_id = 0
    while True:
        with transaction.atomic():
            ids = list(
                Item.objects.filter(project_id=project_id, pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:batch]
            )
            if not ids:
                break
            last_id = ids[-1]
            stored = {
                pk: (count, _as_list(t))
                for pk, count, t in Item.objects.select_for_update().filter(pk__in=ids).order_by("pk")
                .values_list("pk", "annotation_count", "touchers")
            }
            counts = dict(
                Annotation.objects.filter(item_id__in=ids).order_by().values("item_id").annotate(n=Count("id")).values_list("item_id", "n")
            )
            who = {}
            for item_id, user_id in Assignment.objects.filter(item_id__in=ids, kind=ANNOTATE).values_list("item_id", "annotator_id"):
                who.setdefault(item_id, set()).add(user_id)
            for item_id, user_id in Annotation.objects.filter(item_id__in=ids).values_list("item_id", "annotator_id"):
                who.setdefault(item_id, set()).add(user_id)
            for pk, (count, touchers) in stored.items():
                actual_count = counts.get(pk, 0)
                actual_touchers = sorted(who.get(pk, ()))
                changes = {}
                if count != actual_count:
                    changes["annotation_count"] = actual_count
                    counts_fixed += 1
                    logger.warning("queue reconcile: item %s annotation_count %s -> %s", pk, count, actual_count)
                if sorted(touchers) != actual_touchers:
                    changes["touchers"] = actual_touchers or None
                    touchers_fixed += 1
                    logger.warning("queue reconcile: item %s touchers %s -> %s", pk, touchers, actual_touchers)
                if changes:
                    Item.objects.filter(pk=pk).update(**changes)
            checked += len(ids)
    progress_fixed = _progress_reconcile(project_id=project_id)
    order_fixed = queue_order_rekey(project_id=project_id)
    if counts_fixed or touchers_fixed or progress_fixed or order_fixed:
        logger.warning(
            "queue reconcile: project %s: %d counts, %d touchers, %d progress rows, %d open items' ordering drifted (fixed)",
            project_id, counts_fixed, touchers_fixed, progress_fixed, order_fixed,
        )
    return ReconcileResult(checked, counts_fixed, touchers_fixed, progress_fixed, order_fixed)


@transaction.atomic
def _progress_reconcile(*, project_id: int) -> int:
    rows = list(AnnotatorProgress.objects.select_for_update().filter(project_id=project_id).order_by("pk"))
    submitted = dict(
        Annotation.objects.filter(project_id=project_id).order_by().values("annotator_id")
        .annotate(n=Count("id")).values_list("annotator_id", "n")
    )
    skipped = dict(
        Assignment.objects.filter(item__project_id=project_id, kind=ANNOTATE, status=AssignmentStatus.SKIPPED)
        .order_by().values("annotator_id").annotate(n=Count("id")).values_list("annotator_id", "n")
    )
    fixed = 0
    for row in rows:
        want = (submitted.get(row.annotator_id, 0), skipped.get(row.annotator_id, 0))
        if (row.submitted, row.skipped) != want:
            logger.warning("queue reconcile: progress of user %s in project %s %s -> %s",
                           row.annotator_id, project_id, (row.submitted, row.skipped), want)
            AnnotatorProgress.objects.filter(pk=row.pk).update(submitted=want[0], skipped=want[1])
            fixed += 1
    return fixed
