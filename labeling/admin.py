from django.contrib import admin

from labeling import models


class LabelInline(admin.TabularInline):
    model = models.LabelClass
    extra = 0


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "annotations_per_item", "queue_order", "created_at"]
    search_fields = ["name"]
    inlines = [LabelInline, MembershipInline]


@admin.register(models.Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "external_id", "status", "priority", "annotation_count"]
    list_filter = ["status", "project"]
    search_fields = ["external_id"]
    raw_id_fields = ["project"]
    list_select_related = ["project"]


@admin.register(models.LabelChange)
class LabelChangeAdmin(admin.ModelAdmin):
    list_display = ["project", "seq", "item", "previous_label", "label", "method", "changed_at"]
    list_filter = ["method", "project"]
    raw_id_fields = ["item", "project", "actor"]

    def has_change_permission(self, request, obj=None):
        return False  # append-only history
