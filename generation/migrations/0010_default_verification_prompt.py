"""Data: version 1 of the shipped verification prompt (the `verify` stage). ensure_default_prompts() does
the same at launch time; this migration makes it visible right away (and keeps concurrent first launches
from racing to make it)."""

from django.db import migrations


def forward(apps, schema_editor):
    from generation import prompt_defaults

    PromptTemplate = apps.get_model("generation", "PromptTemplate")
    if not PromptTemplate.objects.filter(kind="verify", domain__isnull=True).exists():
        PromptTemplate.objects.create(
            kind="verify", instruction_type="", version=1, text=prompt_defaults.VERIFY, note="shipped default"
        )


def backward(apps, schema_editor):
    apps.get_model("generation", "PromptTemplate").objects.filter(
        kind="verify", note="shipped default", version=1, domain__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0009_verify_stage")]
    operations = [migrations.RunPython(forward, backward)]
