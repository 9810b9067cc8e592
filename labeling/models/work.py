"""Task messages that could not be sent (the broker was down when their transaction committed).

A row here is the record of a message still owed: the periodic work sweep sends it once the broker
answers and deletes the row (labeling.services.work). Work that has a row of its own (a quality run,
an export) is not written here: its status row is the record and the sweep re-sends it from that.
"""

from django.db import models


class DeferredTask(models.Model):
    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    # The same task with the same arguments is owed once: sending it twice would do the same work.
    key = models.CharField(max_length=64, unique=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"deferred {self.task_name}{tuple(self.args)!r}"
