"""Append-only history of annotators changing their own answers before the item is decided."""

from django.conf import settings
from django.db import models


class AnnotationEdit(models.Model):
    """One change of an annotation's label by its annotator: from what, to what, when."""

    annotation = models.ForeignKey("labeling.Annotation", on_delete=models.CASCADE, related_name="edits")
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    old_label = models.CharField(max_length=64)
    new_label = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
