"""Reads for the labeled-delta export: cursors, who may export, and the label history in keyset pages.

A cursor names a position in one project's label history ("every change with seq <= N has been
delivered"; see cursor_encode). `seq` is gapless and assigned in commit order, so a stream reads the
committed head once and then pages `since < seq <= head` in short autocommit queries (see
label_history_pages): nothing is held open while the client reads."""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db.models import CharField, Exists, Func, OuterRef, TextField
from django.db.models.functions import Cast

from common.errors import Forbidden, NotFound, ValidationFailed
from labeling.models import Export, ExportGrant, LabelChange, LabelSequence, Project, Role
from labeling.selectors.access import membership_role

User = get_user_model()

CURSOR_PREFIX = "lc1_"
_CURSOR_BODY = re.compile(r"^(\d{1,19})\.(\d{1,19})\.([0-9a-f]{10})$")
PAGE_ROWS = 5000  # rows per keyset page of a stream (one query, one chunk of the response)

# Column order of a history row as read from the database (see label_history_pages).
ROW_FIELDS = (
    "seq",
    "external_id",
    "label",
    "previous_label",
    "method",
    "score",
    "model_version",
    "annotators",
    "changed_at",
)


# --- cursors -----------------------------------------------------------------------------------


def _check(body: str) -> str:
    return hashlib.sha256(f"loupe-label-cursor:{body}".encode()).hexdigest()[:10]


def cursor_encode(*, project_id: int, seq: int) -> str:
    """The cursor of `seq`: opaque to clients (`lc1_` + base64url of "<project_id>.<seq>.<check>"). The
    check is a checksum, not a signature: a cursor grants nothing (access is checked on every
    request); the checksum only turns typos, truncation and other projects' cursors into a clear
    400. `0` means "from the start"; a cursor past the end of the history (a restored database,
    another server) is refused rather than silently skipping the changes that will take those seqs."""
    body = f"{int(project_id)}.{int(seq)}"
    token = base64.urlsafe_b64encode(f"{body}.{_check(body)}".encode()).rstrip(b"=").decode()
    return CURSOR_PREFIX + token


def cursor_decode(cursor: str | None, *, project_id: int, field: str = "since") -> int:
    """The seq a cursor points at. `None`, "" and "0" mean the start (0). 400 on anything else odd."""
    if cursor is None or cursor.strip() in ("", "0"):
        return 0
    cursor = cursor.strip()
    bad = ValidationFailed(
        f"{field} is not a valid cursor: pass 0 to start, or the next_cursor of your previous export.",
        code="bad_cursor",
        fields={field: ["Not a valid cursor."]},
    )
    if not cursor.startswith(CURSOR_PREFIX) or len(cursor) > 80:
        raise bad
    token = cursor[len(CURSOR_PREFIX) :]
    try:
        body = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad
    match = _CURSOR_BODY.match(body)
    if not match or _check(f"{match[1]}.{match[2]}") != match[3]:
        raise bad
    if int(match[1]) != int(project_id):
        raise ValidationFailed(
            f"{field} is a cursor of another project: cursors are per project; start this one with 0.",
            code="foreign_cursor",
            fields={field: ["This cursor belongs to another project."]},
        )
    return int(match[2])


# --- permissions -------------------------------------------------------------------------------


def access_project_export(*, user, project_id) -> Project:
    """The project if `user` may export its labels: a manager (staff count as managers), or a user
    holding an ExportGrant for it (e.g. a pipeline's service account; the grant allows exports only).
    Non-members without a grant get NotFound, other members Forbidden."""
    try:
        project_id = int(project_id)
    except (TypeError, ValueError):
        raise NotFound("Project not found.")
    role = membership_role(user=user, project_id=project_id)
    granted = (
        role != Role.MANAGER
        and user.is_authenticated
        and ExportGrant.objects.filter(project_id=project_id, user=user).exists()
    )
    if role is None and not granted:
        raise NotFound("Project not found.")
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise NotFound("Project not found.")
    if role != Role.MANAGER and not granted:
        raise Forbidden("Exporting labels needs the manager role or an export grant in this project.")
    project.user_role = role
    project.export_grant = granted
    return project


def access_export(*, user, export_id) -> Export:
    try:
        export_id = int(export_id)
    except (TypeError, ValueError):
        raise NotFound("Export not found.")
    export = Export.objects.select_related("requested_by").filter(pk=export_id).first()
    if export is None:
        raise NotFound("Export not found.")
    try:
        export.project = access_project_export(user=user, project_id=export.project_id)
    except NotFound:
        raise NotFound("Export not found.")
    return export


def export_list(*, project):
    return Export.objects.filter(project=project).select_related("requested_by").order_by("-id")


def export_grant_list(*, project):
    return ExportGrant.objects.filter(project=project).select_related("user", "granted_by").order_by("id")


def export_grants_visible(*, user, project):
    """The grants `user` may read: every one for a manager (staff count as managers), at most their
    own for anyone else. The same rule as GET /api/projects/{id}/export-grants, which is the
    managers' (`project.user_role` is set by access_project / access_project_export)."""
    grants = export_grant_list(project=project)
    return grants if getattr(project, "user_role", None) == Role.MANAGER else grants.filter(user=user)


# --- the label history -------------------------------------------------------------------------


def label_history_head(*, project_id: int) -> int:
    """The last committed seq of the project: every change up to it is visible from now on."""
    return LabelSequence.objects.filter(project_id=project_id).values_list("last_seq", flat=True).first() or 0


def _history(*, project_id: int, until: int, compact: bool, horizon: int | None = None):
    """Changes with seq <= until; compacted: only those whose item did not change again up to `horizon`
    (default `until`)."""
    qs = LabelChange.objects.filter(project_id=project_id, seq__lte=until)
    if compact:
        # An anti-join keeps compaction keyset-pageable by seq (each page costs O(page), on SQLite and
        # PostgreSQL alike), where DISTINCT ON (item_id) would re-sort the whole remaining range per page.
        later = LabelChange.objects.filter(
            item_id=OuterRef("item_id"), seq__gt=OuterRef("seq"), seq__lte=until if horizon is None else horizon
        )
        qs = qs.filter(~Exists(later))
    return qs


@dataclass(frozen=True)
class DeltaBounds:
    since: int  # exclusive
    until: int  # inclusive: the next cursor once everything up to it is delivered
    head: int  # the last committed seq when the bounds were taken


def label_history_bounds(
    *, project_id: int, since: int, limit: int | None = None, compact: bool = False
) -> DeltaBounds:
    """Fix the range a delta covers before any row is sent. With a limit, the range ends at the
    limit-th row (so the next cursor is that row's seq); without one, at the committed head.
    Compaction is always judged against the head (pass `horizon=head` to label_history_pages)."""
    head = label_history_head(project_id=project_id)
    if since > head:
        raise ValidationFailed(
            f"since points past the end of this project's label history (seq {since} > {head}): it was not "
            "issued by this server's history (restored database?). Start again from 0.",
            code="cursor_ahead",
            fields={"since": ["Past the end of the label history."]},
        )
    until = head
    if limit is not None and head - since > limit:
        # The limit-th change after `since`: seqs are gapless, but rows deleted with their item and rows
        # dropped by compaction put it beyond since + limit, so ask the index (O(limit)).
        nth = (
            _history(project_id=project_id, until=head, compact=compact)
            .filter(seq__gt=since)
            .order_by("seq")
            .values_list("seq", flat=True)[limit - 1 : limit]
        )
        nth = list(nth)
        if nth:
            until = nth[0]
    return DeltaBounds(since=since, until=until, head=head)


class Annotators(NamedTuple):
    """One distinct annotator list, resolved and pre-encoded once for every row that has it."""

    names: list  # usernames (a deleted user keeps their numeric id)
    json: str  # JSON array text
    csv: str  # usernames joined by ";"


class AnnotatorCache:
    """Turns the annotators column (JSON text of user ids) into usernames: one query per page for the
    ids not seen yet, one JSON parse per distinct list (a project has few annotator combinations).
    Bounded, so a stream over millions of rows cannot grow it without limit."""

    MAX = 100_000

    def __init__(self):
        self.by_text: dict[str, Annotators] = {}
        self.usernames: dict = {}

    def resolve(self, texts) -> None:
        texts = set(texts)
        new = {t: json.loads(t) for t in texts if t not in self.by_text}
        if not new:
            return
        if len(self.by_text) + len(new) > self.MAX:
            self.by_text.clear()
            self.usernames.clear()
            new = {t: json.loads(t) for t in texts}
        missing = {
            uid for ids in new.values() for uid in ids or () if isinstance(uid, int) and uid not in self.usernames
        }
        if missing:
            found = dict(User.objects.filter(pk__in=missing).values_list("pk", "username"))
            self.usernames.update({uid: found.get(uid) for uid in missing})
        for text, ids in new.items():
            names = [self.usernames.get(uid) or uid if isinstance(uid, int) else uid for uid in ids or ()]
            self.by_text[text] = Annotators(
                names, json.dumps(names, ensure_ascii=False, separators=(",", ":")), ";".join(str(n) for n in names)
            )


class IsoUtc(Func):
    """A timestamp as ISO 8601 UTC text, formatted by the database (much cheaper than building Python
    datetimes for every row of a stream)."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="""to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
            **extra,
        )

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores aware datetimes in SQLite as UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]".
        return self.as_sql(compiler, connection, template="REPLACE(%(expressions)s, ' ', 'T') || 'Z'", **extra)


class HistoryPage(NamedTuple):
    """One keyset page: raw row tuples (ROW_FIELDS order; at index 7 the annotators column as JSON text,
    at index 8 changed_at as ISO 8601 UTC text) and the resolved annotator lists by that text."""

    rows: list
    annotators: dict  # annotators text -> Annotators

    def __len__(self):
        return len(self.rows)


def label_history_pages(
    *,
    project_id: int,
    since: int,
    until: int,
    compact: bool = False,
    horizon: int | None = None,
    page_rows: int | None = None,
) -> Iterator[HistoryPage]:
    """Rows `since < seq <= until` in seq order, in HistoryPages. One short keyset query per page (plus
    one for usernames not seen yet): nothing is held open between pages, so the caller may stream them
    at any pace. Every change with seq <= the committed counter (label_history_head) is visible to any
    later statement, so header and body agree and memory stays constant, with no transaction or
    server-side cursor held while the client reads."""
    size = page_rows or PAGE_ROWS
    base = (
        _history(project_id=project_id, until=until, compact=compact, horizon=horizon)
        .annotate(annotators_text=Cast("annotators", TextField()), changed_at_iso=IsoUtc("changed_at"))
        .order_by("seq")
        .values_list(*ROW_FIELDS[:7], "annotators_text", "changed_at_iso")
    )
    cache = AnnotatorCache()
    after = since
    while after < until:
        rows = list(base.filter(seq__gt=after)[:size])
        if not rows:
            return
        cache.resolve(r[7] for r in rows)
        yield HistoryPage(rows, cache.by_text)
        after = rows[-1][0]
        if len(rows) < size:
            return
