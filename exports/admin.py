from django.contrib import admin

from .models import ExportSpec, ExportVersion, ExportVersionEvent


class ExportVersionInline(admin.TabularInline):
    model = ExportVersion
    extra = 0
    can_delete = False
    fields = ("number", "status", "size_bytes", "sha256", "built_by", "finished_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(ExportSpec)
class ExportSpecAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "image_mode",
        "conversation_mode",
        "train_ratio",
        "seed",
        "created_by",
        "created_at",
    )
    search_fields = ("name",)
    inlines = [ExportVersionInline]

    def get_readonly_fields(self, request, obj=None):
        # Once built, what a spec selects is fixed: a different selection is a new export name, so that
        # versions of one export differ only by the data, and their diffs mean something.
        if obj is not None and obj.versions.exists():
            return (
                "name",
                "selection",
                "train_ratio",
                "seed",
                "formats",
                "image_mode",
                "conversation_mode",
                "created_by",
                "created_at",
            )
        return ()


class EventInline(admin.TabularInline):
    model = ExportVersionEvent
    extra = 0
    can_delete = False
    readonly_fields = ("from_status", "to_status", "actor", "at", "note")


@admin.register(ExportVersion)
class ExportVersionAdmin(admin.ModelAdmin):
    """Read-only: versions change only through the export service (a done one never)."""

    list_display = ("spec", "number", "status", "size_bytes", "sha256", "built_by", "finished_at")
    list_filter = ("status",)
    list_select_related = ("spec", "built_by")
    inlines = [EventInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False
