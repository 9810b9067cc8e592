"""Writes of item comments: post (recording and mailing @mentions of project members) and delete own.

A mention names a member by `@username`. Only members who may read the comment are recorded and
mailed (an annotator on an item still open to them never sees others' comments, see
labeling.selectors.comments), and never the author. `mentioned_members` and `mentions_mail` are the
one implementation of mentions: other comment threads (bug comments) call them too."""

import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from common.errors import Forbidden, NotFound, ValidationFailed
from labeling.models import CommentMention, ItemComment, Membership, Project
from labeling.selectors.blind import labels_visible_to

MAX_COMMENT = 5000
MENTION_RE = re.compile(r"(?<![\w@.])@([\w.+-]{1,150})")


def mentioned_members(*, project_id: int, text: str, author, may_read=None) -> list:
    """The active members of the project (and staff) named with @username in `text`, never the
    author, sorted by username; `may_read(user)` further keeps those allowed to read the comment."""
    names = {m.rstrip(".") for m in MENTION_RE.findall(text)}
    if not names:
        return []
    User = get_user_model()
    users = User.objects.filter(username__in=names, is_active=True).exclude(pk=author.pk)
    members = set(Membership.objects.filter(project_id=project_id).values_list("user_id", flat=True))
    out = [u for u in users if (u.pk in members or u.is_staff) and (may_read is None or may_read(u))]
    return sorted(out, key=lambda u: u.username)


def _mentioned_members(*, item, text, author):
    bare = Project(pk=item.project_id)  # item.project carries the author's role; each user's is looked up
    return mentioned_members(
        project_id=item.project_id,
        text=text,
        author=author,
        may_read=lambda user: bool(labels_visible_to(user=user, project=bare).visible_ids([item.pk])),
    )


def comment_post(*, item, author, text: str) -> ItemComment:
    text = (text or "").strip()
    if not text:
        raise ValidationFailed("The comment is empty.", fields={"text": ["Write something."]})
    if len(text) > MAX_COMMENT:
        raise ValidationFailed("The comment is too long.", fields={"text": [f"At most {MAX_COMMENT} characters."]})
    mentioned = _mentioned_members(item=item, text=text, author=author)
    with transaction.atomic():
        comment = ItemComment.objects.create(item=item, author=author, text=text)
        CommentMention.objects.bulk_create([CommentMention(comment=comment, user=u) for u in mentioned])
        transaction.on_commit(lambda: _mail_mentions(comment=comment, users=mentioned))
    return comment


def mentions_mail(*, author, users, where: str, place: str, text: str, path: str) -> None:
    """Mail each mentioned user (those with an address) that `author` named them on `where`
    (in `place`), with the comment's text and a link to `path`. Call after commit."""
    link = settings.LOUPE_BASE_URL.rstrip("/") + path
    for user in users:
        if not user.email:
            continue
        send_mail(
            f"{author.username} mentioned you on {where}",
            f"{author.username} wrote on {where} ({place}):\n\n{text}\n\n{link}\n",
            settings.DEFAULT_FROM_EMAIL,
            [user.email],
            fail_silently=True,
        )


def _mail_mentions(*, comment, users):
    item = comment.item
    mentions_mail(
        author=comment.author,
        users=users,
        where=item.external_id,
        place=item.project.name,
        text=comment.text,
        path=reverse("item", args=[item.project_id, item.pk]),
    )


def comment_delete(*, user, comment_id) -> None:
    """Delete one's own comment. Someone else's: Forbidden if the caller may read it, else NotFound."""
    from labeling.selectors.comments import comment_item, comments_visible

    comment = ItemComment.objects.filter(pk=comment_id).first()
    if comment is None:
        raise NotFound("Comment not found.")
    try:
        item = comment_item(user=user, item_id=comment.item_id)
    except NotFound:
        raise NotFound("Comment not found.") from None
    if comment.author_id != user.pk:
        if comment.pk in {c.pk for c in comments_visible(user=user, item=item)}:
            raise Forbidden("Only the author can delete a comment.")
        raise NotFound("Comment not found.")
    comment.delete()
