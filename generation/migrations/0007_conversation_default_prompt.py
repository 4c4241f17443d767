"""Data: version 1 of the shipped conversation prompt (ensure_default_prompts() does the same at launch
time, so a flushed test database gets it too)."""

from django.db import migrations


def forward(apps, schema_editor):
    from generation import prompt_defaults

    PromptTemplate = apps.get_model("generation", "PromptTemplate")
    if not PromptTemplate.objects.filter(kind="conversation", domain__isnull=True).exists():
        PromptTemplate.objects.create(
            kind="conversation",
            instruction_type="",
            version=1,
            text=prompt_defaults.CONVERSATION,
            note="shipped default",
        )


def backward(apps, schema_editor):
    apps.get_model("generation", "PromptTemplate").objects.filter(
        kind="conversation", note="shipped default", version=1
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0006_conversation_and_ocr_stages")]

    operations = [migrations.RunPython(forward, backward)]
