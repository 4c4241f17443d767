"""ExportVersionEvent becomes a corpus.transitions.StatusEvent (its columns were those already; only the
choices go), and a version remembers when it was last queued (the sweep re-sends a task lost on the way)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('exports', '0003_version_heartbeat'),
    ]

    operations = [
        migrations.AddField(
            model_name='exportversion',
            name='queued_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='exportversionevent',
            name='from_status',
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.AlterField(
            model_name='exportversionevent',
            name='to_status',
            field=models.CharField(max_length=20),
        ),
    ]
