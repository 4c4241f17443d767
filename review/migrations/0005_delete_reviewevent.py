"""ReviewEvent is gone: an image's review moves are corpus.ImageEvent, a second pass's SecondPassEvent
(copied by 0004)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("review", "0004_copy_review_events")]

    operations = [migrations.DeleteModel(name="ReviewEvent")]
