"""Data: mark the regeneration jobs made before the flag existed (params.regeneration), and give every
unit that failed before the failure history existed its failure row, so its job keeps it (and its cost)
when a later job adopts the unit."""

from django.db import migrations


def forward(apps, schema_editor):
    GenerationJob = apps.get_model("generation", "GenerationJob")
    GenerationUnit = apps.get_model("generation", "GenerationUnit")
    UnitFailure = apps.get_model("generation", "UnitFailure")
    GenerationJob.objects.filter(params__regeneration=True).update(is_regeneration=True)
    rows = []
    for unit in GenerationUnit.objects.filter(status="failed").iterator(chunk_size=1000):
        rows.append(
            UnitFailure(
                job_id=unit.job_id,
                unit_id=unit.pk,
                image_id=unit.image_id,
                instruction_type=unit.instruction_type,
                error=unit.error or "failed",
                attempts=unit.attempts,
                tokens_in=unit.tokens_in,
                tokens_out=unit.tokens_out,
                cost=unit.cost,
                at=unit.finished_at or unit.created_at,
            )
        )
        if len(rows) >= 1000:
            UnitFailure.objects.bulk_create(rows)
            rows = []
    if rows:
        UnitFailure.objects.bulk_create(rows)


def backward(apps, schema_editor):
    # The failure rows go with the table when 0003 is reversed; the flag with its column.
    pass


class Migration(migrations.Migration):
    dependencies = [("generation", "0003_endpoint_rules_and_tests_job_failure_history")]

    operations = [migrations.RunPython(forward, backward)]
