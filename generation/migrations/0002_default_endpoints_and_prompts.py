"""Data: the two default endpoints (from OPENAI_* settings) and version 1 of the shipped prompts.

ensure_default_endpoints()/ensure_default_prompts() do the same at launch time, so a flushed test
database or a changed environment still gets them; this migration makes them visible right away."""

from decimal import Decimal

from django.conf import settings
from django.db import migrations


def forward(apps, schema_editor):
    from generation import prompt_defaults

    Endpoint = apps.get_model("generation", "Endpoint")
    PromptTemplate = apps.get_model("generation", "PromptTemplate")
    for name, kind, model, prices in (
        ("default-vision", "vision", settings.OPENAI_VISION_MODEL, settings.OPENAI_VISION_PRICES),
        ("default-text", "text", settings.OPENAI_TEXT_MODEL, settings.OPENAI_TEXT_PRICES),
    ):
        Endpoint.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "base_url": settings.OPENAI_BASE_URL,
                "api_key_env": settings.OPENAI_API_KEY_ENV,
                "model": model,
                "price_in_per_m": Decimal(prices[0]),
                "price_out_per_m": Decimal(prices[1]),
                "rpm_limit": settings.OPENAI_RPM_LIMIT,
                "tpm_limit": settings.OPENAI_TPM_LIMIT,
                "max_concurrency": settings.OPENAI_MAX_CONCURRENCY,
                "timeout": settings.OPENAI_TIMEOUT,
                "supports_json_schema": settings.OPENAI_SUPPORTS_JSON_SCHEMA,
                "is_default": True,
            },
        )
    if not PromptTemplate.objects.filter(kind="caption", domain__isnull=True).exists():
        PromptTemplate.objects.create(
            kind="caption", instruction_type="", version=1, text=prompt_defaults.CAPTION, note="shipped default"
        )
    for type_, text in prompt_defaults.INSTRUCTION.items():
        if not PromptTemplate.objects.filter(kind="instruction", instruction_type=type_, domain__isnull=True).exists():
            PromptTemplate.objects.create(
                kind="instruction", instruction_type=type_, version=1, text=text, note="shipped default"
            )


def backward(apps, schema_editor):
    apps.get_model("generation", "PromptTemplate").objects.filter(note="shipped default", version=1).delete()
    apps.get_model("generation", "Endpoint").objects.filter(
        name__in=["default-vision", "default-text"], jobs__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0001_endpoints_prompts_jobs_units")]

    operations = [migrations.RunPython(forward, backward)]
