from django.contrib import admin
from django.db import models

from .models import Endpoint, GenerationJob, GenerationUnit, JobEvent, PromptTemplate, UnitEvent


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "model",
        "base_url",
        "rpm_limit",
        "tpm_limit",
        "max_concurrency",
        "is_default",
    )
    list_filter = ("kind",)
    # The model's validators (key variable allow-list, allowed addresses, no control characters) apply here.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = (
        "last_test_at",
        "last_test_ok",
        "last_test_status",
        "last_test_latency_ms",
        "last_test_error",
    )


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    """Read-only here: a new version is made on the Generation › Prompts page, which checks placeholders."""

    list_display = ("__str__", "kind", "domain", "instruction_type", "version", "is_current", "created_at")
    list_filter = ("kind", "instruction_type", "is_current")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class EventInline(admin.TabularInline):
    """A job's or unit's status moves, read-only: they are written by corpus.transitions only."""

    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "from_status", "to_status", "actor", "note")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class JobEventInline(EventInline):
    model = JobEvent


class UnitEventInline(EventInline):
    model = UnitEvent


# Jobs and units are read-only here: every status move goes through corpus.transitions (with its event),
# which an edit form would bypass; pause, resume and cancel are on the job page and the API.
@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ("id", "stage", "status", "endpoint", "launched_by", "created_at")
    list_filter = ("stage", "status")
    readonly_fields = [f.name for f in GenerationJob._meta.fields]
    inlines = [JobEventInline]


@admin.register(GenerationUnit)
class GenerationUnitAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "image", "stage", "instruction_type", "status", "attempts", "round")
    list_filter = ("stage", "status")
    readonly_fields = [f.name for f in GenerationUnit._meta.fields]
    inlines = [UnitEventInline]
