"""The bug stream's reads beyond the filtered list (selectors/bugs.py): which bugs a bulk action may
change, each bug's occurrences over the last days for the rows' trend lines (one query for a page),
and whom bugs can be assigned to."""

from datetime import UTC, datetime, time, timedelta

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from bugqueue.models import BugOccurrence
from bugqueue.selectors.bugs import _apply, _scope, bug_filters_parse, visible_project_ids
from common.errors import Forbidden, NotFound, ValidationFailed
from labeling.models import Membership
from labeling.selectors.access import REVIEW_ROLES


def stream_members(*, user, project=None, limit: int = 500) -> list[str]:
    """Usernames a bug on the stream can be assigned to: the project's members, or (all projects)
    the members of the projects `user` sees."""
    scope = (
        Membership.objects.filter(project=project)
        if project is not None
        else Membership.objects.filter(project_id__in=visible_project_ids(user=user))
    )
    return list(scope.order_by("user__username").values_list("user__username", flat=True).distinct()[:limit])


def bulk_targets(*, user, bug_ids=None, query: str | None = None, project=None, limit: int = 10_000) -> list[int]:
    """The bugs a bulk action names, as ids `user` may change (the reviewer or manager role in each
    bug's project, as for PATCH): either `bug_ids` (unknown or invisible ones: 404 listing them) or
    the bugs matching the search `query` (within `project` when given). 403 when any of them is in
    a project where the user may only read; 400 when more than `limit` match."""
    if (bug_ids is None) == (query is None):
        raise ValidationFailed(
            'Send either "bugs" (a list of ids) or "query" (a search).', fields={"bugs": ["Required."]}
        )
    if bug_ids is not None:
        if not isinstance(bug_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in bug_ids):
            raise ValidationFailed("bugs must be a list of bug ids.", fields={"bugs": ["A list of integers."]})
        if not bug_ids:
            raise ValidationFailed("bugs is empty.", fields={"bugs": ["At least one bug."]})
        if len(bug_ids) > limit:
            raise ValidationFailed(f"At most {limit:,} bugs at once.", fields={"bugs": [f"At most {limit:,}."]})
        rows = dict(
            _scope(user=user, project=project)
            .filter(pk__in=[i for i in bug_ids if 0 < i < 2**63])
            .values_list("pk", "project_id")
        )
        missing = [i for i in dict.fromkeys(bug_ids) if i not in rows]
        if missing:
            shown = ", ".join(f"#{i}" for i in missing[:20]) + (" …" if len(missing) > 20 else "")
            raise NotFound(f"Bugs not found: {shown}.", fields={"bugs": [f"Unknown bug {i}." for i in missing[:20]]})
    else:
        filters = bug_filters_parse({"q": query})
        rows = dict(
            _apply(_scope(user=user, project=project), filters, user=user)
            .order_by("pk")
            .values_list("pk", "project_id")[: limit + 1]
        )
        if len(rows) > limit:
            raise ValidationFailed(
                f"The search matches more than {limit:,} bugs; narrow it.", fields={"query": [f"At most {limit:,}."]}
            )
    if not user.is_staff:
        projects = set(rows.values())
        allowed = set(
            Membership.objects.filter(user=user, project_id__in=projects, role__in=REVIEW_ROLES).values_list(
                "project_id", flat=True
            )
        )
        if projects - allowed:
            raise Forbidden("Changing bugs needs the reviewer or manager role in their project.")
    return sorted(rows)


def bug_trends(*, bug_ids, days: int = 14, now=None) -> dict:
    """Occurrences per UTC day over the last `days` days (oldest first) of each bug, in one query."""
    today = (now or timezone.now()).astimezone(UTC).date()
    start = today - timedelta(days=days - 1)
    out = {i: [0] * days for i in bug_ids}
    rows = (
        BugOccurrence.objects.filter(bug_id__in=list(bug_ids), seen_at__gte=datetime.combine(start, time(), UTC))
        .annotate(day=TruncDate("seen_at", tzinfo=UTC))
        .values("bug_id", "day")
        .annotate(n=Sum("count"))
        .order_by()
    )
    for row in rows:
        index = (row["day"] - start).days
        if 0 <= index < days:
            out[row["bug_id"]][index] = row["n"]
    return out


def may_change_bugs_somewhere(*, user) -> bool:
    """Whether `user` holds the reviewer or manager role in some project (staff: always), which
    decides whether the all-projects stream offers bulk actions (each one is checked again)."""
    return user.is_staff or Membership.objects.filter(user=user, role__in=REVIEW_ROLES).exists()
