"""Bug comments: add one, recording and mailing the project members it @mentions. Mentions are
labeling's (labeling.services.comments): one parser and one mail for item and bug comments. Anyone
who may see a bug may read its comments, so every mentioned member is notified."""

from functools import partial

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from bugqueue.models import Bug, BugCommentMention, Comment
from common.errors import ValidationFailed
from labeling.services.comments import mentioned_members, mentions_mail

MAX_COMMENT_CHARS = 20_000


@transaction.atomic
def comment_add(*, bug: Bug, author, body) -> Comment:
    """Add a comment. Members named with @username (anyone who may see the bug may read its
    comments) are recorded and mailed after commit, as on item comments (labeling's mentions)."""
    if not isinstance(body, str) or not body.strip():
        raise ValidationFailed("body is required.", fields={"body": ["This field may not be blank."]})
    if len(body) > MAX_COMMENT_CHARS:
        raise ValidationFailed(
            f"A comment holds at most {MAX_COMMENT_CHARS:,} characters.",
            fields={"body": [f"At most {MAX_COMMENT_CHARS:,} characters."]},
        )
    comment = Comment.objects.create(bug=bug, author=author, body=body.strip())
    Bug.objects.filter(pk=bug.pk).update(updated_at=timezone.now())
    mentioned = mentioned_members(project_id=bug.project_id, text=comment.body, author=author) if author else []
    if mentioned:
        BugCommentMention.objects.bulk_create([BugCommentMention(comment=comment, user=u) for u in mentioned])
        transaction.on_commit(
            partial(
                mentions_mail,
                author=author,
                users=mentioned,
                where=f"bug #{bug.pk}",
                place=bug.title,
                text=comment.body,
                path=reverse("bug-page", args=[bug.pk]) + "#comments",
            )
        )
    return comment
