"""Nearest-neighbour index over a project's items, kept in step as items arrive.

The vectoriser (TF-IDF over the payload text, or standardisation of numeric payload fields) is fitted
once and refitted when the project has grown a lot; item vectors are stored in append-only segment
files (rows = items, L2-normalised), so a query never refits or re-vectorises the whole project.
"""

from django.db import models

from .core import Project


class SimilarityIndex(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "TF-IDF of the payload text"
        NUMERIC = "numeric", "Standardised numeric payload fields"

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="similarity_index")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    generation = models.PositiveIntegerField(default=1)  # bumped on every refit; segments of older ones are dropped
    vectorizer_path = models.CharField(max_length=500)
    fitted_on = models.PositiveIntegerField(default=0)  # how many items the vectoriser was fitted on
    indexed_through_id = models.BigIntegerField(default=0)  # every item with id <= this is in a segment
    n_rows = models.PositiveIntegerField(default=0)
    fitted_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)


class SimilaritySegment(models.Model):
    index = models.ForeignKey(SimilarityIndex, on_delete=models.CASCADE, related_name="segments")
    generation = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    first_item_id = models.BigIntegerField()
    last_item_id = models.BigIntegerField()
    n_rows = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["index_id", "first_item_id"]
