"""A version's first event (written when it is allocated) was recorded as queued → queued; on the one
state machine a new row's first event comes from nothing ("" → queued), and queued → queued now means
"the sweep sent its lost task again". Rewrite the old first events so the history says what happened."""

from django.db import migrations


def first_events_from_nothing(apps, schema_editor):
    Event = apps.get_model("exports", "ExportVersionEvent")
    # Only allocation wrote queued → queued before this migration, always with the note "queued".
    Event.objects.filter(from_status="queued", to_status="queued", note="queued").update(from_status="")


def first_events_from_queued(apps, schema_editor):
    Event = apps.get_model("exports", "ExportVersionEvent")
    Event.objects.filter(from_status="", to_status="queued").update(from_status="queued")


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0004_version_events_on_the_one_state_machine_and_queued_at"),
    ]

    operations = [migrations.RunPython(first_events_from_nothing, first_events_from_queued)]
