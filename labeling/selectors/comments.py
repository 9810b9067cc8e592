"""Reads of item comments and of a user's @mentions, with the blind-labeling rule applied.

Who may see an item (any member of its project, staff) may read and post its comments. Comments can
name labels, so an annotator on an item still open to them (labeling.selectors.blind: labels not yet
visible) sees only their own comments on it; once the item is closed for them they see them all.
A mention is listed to the named user only while they may see the comment under the same rule.
Every read here applies that rule through `_readable`, so a list of many items (a bug's failures,
comments_on_items) answers exactly as each item's own list does."""

from django.db.models import Q

from common.errors import NotFound
from labeling.models import CommentMention, Item, ItemComment
from labeling.selectors.access import access_project
from labeling.selectors.blind import LabelVisibility, labels_visible_to

ITEMS_COMMENTS_LIMIT = 200


def _readable(qs, *, user, vis: LabelVisibility):
    """Of the comments `qs`, those `user` may read: all of them on items whose labels `vis` shows,
    only their own elsewhere (one SQL filter, whatever the number of items)."""
    if vis.all:
        return qs
    return qs.filter(Q(author_id=user.pk) | vis.q("item__"))


def comment_item(*, user, item_id):
    """The item (with its project, role set) when `user` may see it; NotFound otherwise."""
    project_id = Item.objects.filter(pk=item_id).values_list("project_id", flat=True).first()
    if project_id is None:
        raise NotFound("Item not found.")
    project = access_project(user=user, project_id=project_id)
    item = Item.objects.get(pk=item_id)
    item.project = project
    return item


def comments_visible(*, user, item):
    """The comments `user` may read on `item`, oldest first, with author and mentioned users."""
    qs = ItemComment.objects.filter(item=item).select_related("author").prefetch_related("mentions")
    qs = _readable(qs, user=user, vis=labels_visible_to(user=user, project=item.project))
    return list(qs.order_by("created_at", "id"))


def comments_on_items(*, user, project, items, limit: int = ITEMS_COMMENTS_LIMIT) -> tuple[list, bool]:
    """The comments `user` may read on `items` (item ids, or a queryset of Items or of item ids) of
    `project` (carrying user_role, as access_project sets it), newest first, each with its author and
    its item's external_id: one query for any number of items. Returns (at most `limit` comments,
    whether there are more)."""
    if not getattr(user, "is_authenticated", False):
        return [], False
    qs = ItemComment.objects.filter(item__project_id=project.pk, item_id__in=items)
    qs = _readable(qs, user=user, vis=labels_visible_to(user=user, project=project))
    rows = list(
        qs.select_related("author", "item")
        .only("id", "text", "created_at", "item_id", "item__external_id", "item__project_id", "author__username")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    return rows[:limit], len(rows) > limit


def comments_for_page(*, user, item):
    """The same list for templates; empty for a caller who is not signed in."""
    if not getattr(user, "is_authenticated", False):
        return []
    return comments_visible(user=user, item=item)


def mentions_of(*, user, limit=100):
    """The newest mentions of `user` they may still read, newest first."""
    rows = list(
        CommentMention.objects.filter(user=user)
        .select_related("comment__author", "comment__item__project")
        .order_by("-created_at", "-id")[:limit]
    )
    visible = {}
    for row in rows:
        project = row.comment.item.project
        if project.pk not in visible:
            visible[project.pk] = labels_visible_to(user=user, project=project)
    out = []
    for row in rows:
        item = row.comment.item
        if row.comment.author_id == user.pk or visible[item.project_id].visible_ids([item.pk]):
            out.append(row)
    return out
