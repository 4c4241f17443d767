from django.contrib import admin

from .models import HallucinationMark, SecondPass, SecondPassEvent, SecondVerdict


class SecondPassEventInline(admin.TabularInline):
    model = SecondPassEvent
    extra = 0
    can_delete = False
    readonly_fields = ("from_status", "to_status", "actor", "at", "note")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(HallucinationMark)
class HallucinationMarkAdmin(admin.ModelAdmin):
    list_display = ["category", "item_type", "domain", "model_name", "span_text", "by", "at"]
    list_filter = ["category", "item_type", "domain"]
    raw_id_fields = ["caption", "instruction", "revision", "by"]
    list_select_related = ["domain", "by"]


@admin.register(SecondPass)
class SecondPassAdmin(admin.ModelAdmin):
    list_display = ["image", "status", "first_reviewer", "reviewer", "created_at", "completed_at"]
    list_filter = ["status"]
    raw_id_fields = ["image", "first_reviewer", "reviewer"]
    inlines = [SecondPassEventInline]


@admin.register(SecondVerdict)
class SecondVerdictAdmin(admin.ModelAdmin):
    list_display = ["second_pass", "caption", "instruction", "first_status", "second_status", "agrees", "by"]
    list_filter = ["agrees"]
    raw_id_fields = ["second_pass", "caption", "instruction", "by"]
