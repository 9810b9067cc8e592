"""Comments on items and the @mentions they carry (who was named, for GET /api/me/mentions)."""

from django.conf import settings
from django.db import models


class ItemComment(models.Model):
    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    mentions = models.ManyToManyField(settings.AUTH_USER_MODEL, through="CommentMention", related_name="+")

    class Meta:
        indexes = [models.Index(fields=["item", "created_at"])]


class CommentMention(models.Model):
    """One member named with @username in a comment (mailed once, when the comment was posted)."""

    comment = models.ForeignKey(ItemComment, on_delete=models.CASCADE, related_name="mention_rows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comment", "user"], name="comment_mention_once")]
        indexes = [models.Index(fields=["user", "created_at"])]
