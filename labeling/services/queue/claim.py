"""Claiming the next item of an annotator's queue (Assignment, kind "annotate": a lease on one
slot of an open item), in one transaction that is safe under concurrency.

The idea: every writer that takes a slot holds the item's row lock, and the lease is inserted by a
conditional INSERT ... SELECT that recounts the slots in a new statement, so a claim never counts
and then inserts. Candidates are locked with SKIP LOCKED; when all were locked the claim waits for
one row and re-verifies, so "nothing left" is never answered spuriously. Other backends (the SQLite
demo) take a portable ORM path; their write transactions are serialised. Long because the
PostgreSQL path and its portable twin stay side by side, so the two are read and changed together.

Raw SQL: FOR UPDATE OF one table SKIP LOCKED over a window, a recursive loose index scan over the
distinct `touchers` sets and an INSERT ... ON CONFLICT inside data-modifying CTEs cannot be said in the ORM.
"""

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.db import is_postgres
from common.db.sql import execute, fetchall, fetchone, table
from common.errors import Conflict
from labeling.models import (
    REOPEN_VALID_SQL,
    Annotation,
    AnnotatorProgress,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    Project,
    QueueOrder,
    ReopenRequest,
)
from labeling.models.core import QUEUE_KEY_SQL, TOUCHERS_KEY_SQL

ANNOTATE = AssignmentKind.ANNOTATE
# Leases one annotator may hold in a project at once: the item on screen, the one fetched ahead,
# and one whose submission is still being retried by the page.
MAX_HELD_LEASES = 3
FRESH_WINDOW = 32
TOUCHED_WINDOW = 64
TOUCHED_CANDIDATES = 8  # eligible touched rows kept from the window, in order (the rest may be locked)
MAX_ATTEMPTS = 10
REQUEST_WINDOW = 32  # reopen requests examined per claim, best rank first
REQUEST_REACH = 2000  # ... and at most this many when none of those is for this annotator

_BUCKET_ORM = {
    QueueOrder.FIFO: F("created_at").asc(),
    QueueOrder.PRIORITY: F("priority").desc(),
    QueueOrder.UNCERTAINTY: F("uncertainty").desc(nulls_last=True),
    QueueOrder.OLDEST_PREDICTION: F("first_predicted_at").asc(nulls_last=True),
}
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_KEY_COLUMNS = "id, touchers, reopen_rank, created_at, priority, uncertainty, first_predicted_at, annotation_count"
_KEY_NAMES = tuple(c.strip() for c in _KEY_COLUMNS.split(","))

_ITEM = table(Item)
_ASSIGNMENT = table(Assignment)
_ANNOTATION = table(Annotation)
_GROUP_KEY = TOUCHERS_KEY_SQL  # the item_q_groups index's key: the loose scan walks it
_ACTIVE_SLOTS = (
    f"(SELECT count(*) FROM {_ASSIGNMENT} a WHERE a.item_id = {{alias}}.id AND a.kind = 'annotate' "
    f"AND a.status = 'active' AND a.expires_at > %(now)s)"
)


def queue_order_sql(order: str, alias: str = "") -> str:
    """ORDER BY of the queue (PostgreSQL); matches the item_q_fresh / item_q_touched indexes in
    labeling.models.core. Reopened items first (lowest reopen_rank), then the project's ordering
    (each open item carries it in queue_order, and QUEUE_KEY_SQL turns it into one number, so the SQL
    is the same for every ordering), ties to the items closest to completion, then id."""
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


def touchers_list(value) -> list:
    """Item.touchers as a list (raw SQL may return the JSON text)."""
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
        attempt = _claim_attempt(
            project=project, annotator=annotator, exclude=exclude, now=now or timezone.now(), wait_for=wait_for
        )
        if attempt.claim is not None:
            return attempt.claim
        if not attempt.retry:
            return None
        wait_for = attempt.wait_for
    # Every attempt lost its candidate to a concurrent claim: the queue is moving, so try once more
    # without waiting for a particular item before giving up.
    attempt = _claim_attempt(
        project=project, annotator=annotator, exclude=exclude, now=now or timezone.now(), wait_for=None
    )
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
    if not is_postgres():
        return _with_progress(_claim_portable(project=project, annotator=annotator, now=now), done, today)

    me = annotator.pk
    if wait_for is not None:
        row = _lock_one(wait_for)  # waits for that row lock: the only item lock held here
    else:
        row = _find(project=project, me=me, now=now, lock=True)
    if row is None:
        if wait_for is not None:
            return _Attempt(retry=True)
        probe = _find(project=project, me=me, now=now, lock=False)
        if probe is None:
            return _Attempt()  # nothing eligible, locked or not
        return _Attempt(retry=True, wait_for=probe["id"])
    claim = _take(row=row, me=me, now=now, expires_at=now + timedelta(seconds=project.lease_seconds))
    if claim is None:
        return _Attempt(retry=True)
    return _with_progress(_Attempt(claim=claim), done, today)


def _open_requested(*, project, me: int, now: datetime) -> int | None:
    """Open the best-ranked item a quality run asked one more annotation of (ReopenRequest) that this
    annotator may annotate: the item becomes open (required_annotations + 1, reopen_rank = the
    request's rank, the project's queue_order), so the claim that follows finds it, in queue order,
    among the other open items. Requests found stale on the way are dropped. Returns the opened
    item's id, or None.

    The request rows are taken with SKIP LOCKED (concurrent claims open different items, none
    waits), and the item only if it is still exactly as requested."""
    if not is_postgres():
        return _open_requested_portable(project=project, me=me, now=now)
    requests, items = table(ReopenRequest), _ITEM
    valid = REOPEN_VALID_SQL.format(i="i", r="r")
    params = {"p": project.pk, "order": project.queue_order, "now": now}
    for reach in (REQUEST_WINDOW, REQUEST_REACH):
        # The head of the requests in rank order (walked on reopen_request_head), with what the
        # claim needs to know of each item.
        head = fetchall(
            f"""SELECT r.item_id, coalesce({valid}, false) AS valid, coalesce(i.touchers, '[]') AS touchers
                FROM (SELECT * FROM {requests} WHERE project_id = %(p)s ORDER BY rank, item_id LIMIT %(n)s) r
                LEFT JOIN {items} i ON i.id = r.item_id ORDER BY r.rank, r.item_id""",
            {**params, "n": reach},
        )
        stale = [item_id for item_id, ok, _ in head if not ok]
        if stale:
            execute(
                f"DELETE FROM {requests} r WHERE r.item_id = ANY(%s) AND NOT EXISTS "
                f"(SELECT 1 FROM {items} i WHERE i.id = r.item_id AND {valid})",
                [stale],
            )
        mine = [item_id for item_id, ok, touchers in head if ok and me not in touchers_list(touchers)]
        if mine:
            break
        if len(head) < REQUEST_WINDOW:
            return None  # every request was looked at
    if not mine:
        return None  # this annotator labelled every item in reach: the others' claims open those
    row = fetchone(
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
    return row[0] if row else None


def _open_requested_portable(*, project, me: int, now: datetime) -> int | None:
    """The same with the ORM (SQLite, whose write transactions are serialised: no row locks)."""
    head = ReopenRequest.objects.filter(project_id=project.pk).order_by("rank", "item_id")
    valid = set(head.valid().values_list("item_id", flat=True)[:REQUEST_REACH])
    stale, opened = [], None
    for request in head.select_related("item")[:REQUEST_REACH]:
        if request.item_id not in valid:
            stale.append(request.item_id)
        elif me not in touchers_list(request.item.touchers):
            opened = request
            break
    ReopenRequest.objects.filter(item_id__in=stale).delete()  # (the stale ones met on the way, in one query)
    if opened is None:
        return None
    Item.objects.filter(pk=opened.item_id).update(
        status=ItemStatus.OPEN,
        required_annotations=F("required_annotations") + 1,
        reopen_rank=opened.rank,
        queue_order=project.queue_order,
        updated_at=now,
    )
    opened.delete()
    return opened.item_id


def _held_leases(*, project, annotator, now) -> list[tuple]:
    """The annotator's unexpired leases on open items of the project: (id, expires_at, item id,
    external_id, payload), oldest first."""
    if not is_postgres():
        return list(
            Assignment.objects.filter(
                annotator=annotator,
                kind=ANNOTATE,
                status=AssignmentStatus.ACTIVE,
                expires_at__gt=now,
                item__project_id=project.pk,
                item__status=ItemStatus.OPEN,
            )
            .order_by("id")
            .values_list("id", "expires_at", "item_id", "item__external_id", "item__payload")
        )
    return fetchall(  # plain SQL on the hot path of every claim (no ORM compiling)
        f"""SELECT a.id, a.expires_at, i.id, i.external_id, i.payload FROM {_ASSIGNMENT} a
            JOIN {_ITEM} i ON i.id = a.item_id
            WHERE a.annotator_id = %s AND a.kind = %s AND a.status = %s AND a.expires_at > %s
              AND i.project_id = %s AND i.status = %s ORDER BY a.id""",
        [annotator.pk, ANNOTATE, AssignmentStatus.ACTIVE, now, project.pk, ItemStatus.OPEN],
    )


def _with_progress(attempt: _Attempt, done: int, today: int) -> _Attempt:
    if attempt.claim is None:
        return attempt
    return _Attempt(claim=replace(attempt.claim, done_by_me=done, done_today=today))


def _payload(value):
    return json.loads(value) if isinstance(value, str) else value


def _progress_touch(*, project_id: int, annotator_id: int, now: datetime) -> tuple[int, int]:
    """Create or lock the annotator's progress row: serialises one annotator's concurrent claims.
    Returns (submissions in the project, submissions today)."""
    submitted, day, day_submitted = fetchone(
        f"""INSERT INTO {table(AnnotatorProgress)} (project_id, annotator_id, submitted, skipped, day, day_submitted, last_claim_at)
            VALUES (%s, %s, 0, 0, NULL, 0, %s)
            ON CONFLICT (project_id, annotator_id) DO UPDATE SET last_claim_at = EXCLUDED.last_claim_at
            RETURNING submitted, day, day_submitted""",
        [project_id, annotator_id, now],
    )
    if isinstance(day, str):  # SQLite returns dates as text from raw SQL
        day = date.fromisoformat(day)
    return submitted, (day_submitted if day == now.date() else 0)


def _as_dicts(rows, names) -> list[dict]:
    return [dict(zip(names, r)) for r in rows]


def _find(*, project, me, now, lock):
    """The first eligible item in queue order (locked with SKIP LOCKED when `lock`), or None.

    Open items live in two partial indexes: "fresh" (nobody ever held a lease: all eligible) and
    "touched". Only the heads of both are read first. When the touched window holds nothing
    eligible (typically this annotator's own items waiting for others), the claim does not walk the
    rest: a loose index scan lists the distinct `touchers` sets that do not contain this annotator
    and takes the first free item among them, so the cost does not grow with what they have done."""
    order = project.queue_order
    params = {
        "p": project.pk,
        "me": json.dumps([me]),
        "now": now,
        "fw": FRESH_WINDOW,
        "tw": TOUCHED_WINDOW,
        "tc": TOUCHED_CANDIDATES,
    }
    lock_sql = "FOR UPDATE OF i SKIP LOCKED" if lock else ""
    # 1. The heads of both indexes: FRESH_WINDOW fresh items, TOUCHED_WINDOW touched ones.
    found = _as_dicts(
        fetchall(
            f"""WITH tw AS MATERIALIZED (
                SELECT id, touchers, annotation_count, required_annotations,
                       row_number() OVER (ORDER BY {queue_order_sql(order)}) AS rn
                FROM {_ITEM}
                WHERE project_id = %(p)s AND status = 'open' AND touchers IS NOT NULL
                ORDER BY {queue_order_sql(order)} LIMIT %(tw)s)
            SELECT i.{_KEY_COLUMNS.replace(", ", ", i.")}, (SELECT count(*) FROM tw) AS touched_seen
            FROM {_ITEM} i
            WHERE i.id IN (
                (SELECT id FROM {_ITEM} WHERE project_id = %(p)s AND status = 'open' AND touchers IS NULL
                 ORDER BY {queue_order_sql(order)} LIMIT %(fw)s)
                UNION ALL
                (SELECT tw.id FROM tw WHERE NOT tw.touchers @> %(me)s::jsonb
                   AND tw.annotation_count + {_ACTIVE_SLOTS.format(alias="tw")} < tw.required_annotations
                 ORDER BY tw.rn LIMIT %(tc)s)
            )
            AND i.status = 'open' AND (i.touchers IS NULL OR NOT i.touchers @> %(me)s::jsonb)
            ORDER BY {queue_order_sql(order, "i")}
            LIMIT 1 {lock_sql}""",
            params,
        ),
        _KEY_NAMES + ("touched_seen",),
    )
    if found and (found[0]["touchers"] is not None or found[0]["touched_seen"] < TOUCHED_WINDOW):
        # A touched item from the window beats every touched item beyond it; a fresh one does too
        # when the window held all touched items.
        return found[0]
    # 2. Beyond the windows: an annotator whose own items (waiting for others) fill the head of the
    #    touched order, or heavy contention. Compare the first fresh item (skipping locked ones) with
    #    the first free item among the touched groups this annotator is not part of.
    candidates = list(found)
    if not found:
        candidates += _as_dicts(
            fetchall(
                f"""SELECT {_KEY_COLUMNS} FROM {_ITEM} i
            WHERE project_id = %(p)s AND status = 'open' AND touchers IS NULL
            ORDER BY {queue_order_sql(order)} LIMIT 1 {lock_sql}""",
                params,
            ),
            _KEY_NAMES,
        )
    groups = [
        r[0]
        for r in fetchall(
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
    ]
    if groups:
        candidates += _as_dicts(
            fetchall(
                f"""SELECT {_KEY_COLUMNS} FROM {_ITEM} i
                WHERE project_id = %(p)s AND status = 'open' AND touchers IS NOT NULL
                  AND touchers = ANY(%(groups)s::jsonb[])
                  AND annotation_count + {_ACTIVE_SLOTS.format(alias="i")} < required_annotations
                ORDER BY {queue_order_sql(order)} LIMIT 1 {lock_sql}""",
                {**params, "groups": groups},
            ),
            _KEY_NAMES,
        )
    if not candidates:
        return None
    return min(candidates, key=lambda r: _sort_key(r, order))


def _lock_one(item_id):
    found = _as_dicts(
        fetchall(f"SELECT {_KEY_COLUMNS} FROM {_ITEM} i WHERE id = %s AND status = 'open' FOR UPDATE", [item_id]),
        _KEY_NAMES,
    )
    return found[0] if found else None


def _take(*, row, me, now, expires_at) -> Claim | None:
    """Insert the lease if the locked item still has a free slot (recounted in this new statement)."""
    touchers = touchers_list(row["touchers"])
    if me in touchers:
        return None
    new_touchers = json.dumps(sorted(set(touchers) | {me}))
    got = fetchone(
        f"""WITH ok AS (
                SELECT i.id FROM {_ITEM} i
                WHERE i.id = %(item)s AND i.status = 'open'
                  AND i.annotation_count + {_ACTIVE_SLOTS.format(alias="i")} < i.required_annotations
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
    if got is None:
        _heal_touchers(item_id=row["id"], me=me, new_touchers=new_touchers)
        return None
    return Claim(got[0], got[1], got[2], got[3], _payload(got[4]), reused=False)


def _heal_touchers(*, item_id, me, new_touchers):
    """If the annotator already has a lease or an annotation on the item (written by some other path),
    record them in touchers so the queue stops offering it."""
    execute(
        f"""UPDATE {_ITEM} SET touchers = %(touchers)s::jsonb WHERE id = %(item)s
            AND (EXISTS (SELECT 1 FROM {_ASSIGNMENT} WHERE item_id = %(item)s AND annotator_id = %(me)s AND kind = 'annotate')
                 OR EXISTS (SELECT 1 FROM {_ANNOTATION} WHERE item_id = %(item)s AND annotator_id = %(me)s))""",
        {"item": item_id, "me": me, "touchers": new_touchers},
    )


def eligible_items(*, project: Project, annotator, now: datetime):
    """Open items this annotator may be given now, in queue order (portable ORM; also the reference
    the PostgreSQL path is tested against). An annotator never gets an item twice: a skipped or
    expired lease keeps its row, and an expired lease frees its slot at once."""
    active = (
        Assignment.objects.filter(
            item=OuterRef("pk"), kind=ANNOTATE, status=AssignmentStatus.ACTIVE, expires_at__gt=now
        )
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
    item = (
        eligible_items(project=project, annotator=annotator, now=now)
        .only("id", "touchers", "external_id", "payload")
        .first()
    )
    if item is None:
        return _Attempt()
    expires_at = now + timedelta(seconds=project.lease_seconds)
    assignment = Assignment.objects.create(item=item, annotator=annotator, kind=ANNOTATE, expires_at=expires_at)
    touchers = sorted(set(touchers_list(item.touchers)) | {annotator.pk})
    Item.objects.filter(pk=item.pk).update(touchers=touchers)
    return _Attempt(claim=Claim(assignment.pk, expires_at, item.pk, item.external_id, item.payload, reused=False))
