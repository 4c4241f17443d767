from django.contrib import admin

from .models import (
    Caption,
    Conversation,
    DatasetImport,
    DatasetImportEvent,
    Domain,
    Image,
    ImageEvent,
    ImportBatch,
    Instruction,
    Revision,
    SeedQuestion,
)


class SeedQuestionInline(admin.TabularInline):
    model = SeedQuestion
    extra = 0


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active")
    list_filter = ("is_active",)
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug")
    inlines = [SeedQuestionInline]


class ImageEventInline(admin.TabularInline):
    """The image's review moves, read-only (they are the record; only corpus.services writes them)."""

    model = ImageEvent
    extra = 0
    can_delete = False
    readonly_fields = ("from_status", "to_status", "actor", "at", "note")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "original_name",
        "domain",
        "width",
        "height",
        "format",
        "review_status",
        "imported_at",
    )
    list_filter = ("domain", "review_status", "format", "is_sample")
    search_fields = ("original_name", "sha256", "prior_knowledge")
    raw_id_fields = ("near_duplicate_of", "imported_by", "leased_by")
    readonly_fields = ("sha256", "phash", "width", "height", "format")
    inlines = [ImageEventInline]


class RevisionInline(admin.TabularInline):
    model = Revision
    extra = 0
    can_delete = False
    readonly_fields = ("version", "action", "by", "at", "before", "after", "note")


@admin.register(Caption)
class CaptionAdmin(admin.ModelAdmin):
    list_display = ("id", "image", "status", "origin", "model_name", "version")
    list_filter = ("status", "origin")
    raw_id_fields = ("image", "created_by", "reviewed_by")
    inlines = [RevisionInline]


@admin.register(Instruction)
class InstructionAdmin(admin.ModelAdmin):
    list_display = ("id", "image", "type", "status", "origin", "model_name", "version")
    list_filter = ("type", "status", "origin")
    search_fields = ("question", "answer")
    raw_id_fields = ("image", "caption", "created_by", "reviewed_by", "dataset_import")
    inlines = [RevisionInline]


class TurnInline(admin.TabularInline):
    """A dialogue's turns, read-only here: each is an Instruction, edited and reviewed as one."""

    model = Instruction
    fk_name = "conversation"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("turn", "type", "question", "answer", "status", "version")
    readonly_fields = fields
    ordering = ("turn",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Read-only: dialogues are made by the conversation stage and dataset imports; their turns are
    reviewed on the review page. Deleting one here would cascade to its turns, accepted ones included."""

    list_display = ("id", "image", "origin", "model_name", "prompt_version", "created_at")
    list_filter = ("origin",)
    list_select_related = ("image",)
    inlines = [TurnInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ("id", "domain", "status", "n_files", "created_by", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("summary", "error", "staging_dir", "started_at", "finished_at")


class DatasetImportEventInline(admin.TabularInline):
    model = DatasetImportEvent
    extra = 0
    can_delete = False
    readonly_fields = ("from_status", "to_status", "actor", "at", "note")


@admin.register(DatasetImport)
class DatasetImportAdmin(admin.ModelAdmin):
    """Read-only: imports are made by the command, the page and the API, and move by their state machine."""

    list_display = ("id", "name", "format", "domain", "status", "records_done", "created_by", "created_at")
    list_filter = ("status", "format")
    inlines = [DatasetImportEventInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
