from django.contrib import admin

from bugqueue import models


@admin.register(models.Tag)
class TagAdmin(admin.ModelAdmin):
    """The curated tag list: staff add and describe failure types here."""

    list_display = ["slug", "name", "position", "description"]
    list_editable = ["position"]
    search_fields = ["slug", "name"]


@admin.register(models.Bug)
class BugAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "title", "kind", "status", "priority", "occurrences", "last_seen"]
    list_filter = ["status", "priority", "kind", "project"]
    search_fields = ["title", "fingerprint"]
    raw_id_fields = ["project", "assignee", "reporter", "duplicate_of"]
    readonly_fields = ["occurrences", "fingerprint"]

    def has_change_permission(self, request, obj=None):
        return False  # changes go through the services (history, transitions)
