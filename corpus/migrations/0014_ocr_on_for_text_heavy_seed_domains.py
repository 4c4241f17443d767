"""OCR on for the seeded domains whose images are mostly text: the ocr stage may run on them (an admin
turns it on or off per domain on its edit page)."""

from django.db import migrations

TEXT_HEAVY = ["ocr", "posters", "brand-recognition", "meme-comprehension", "structured-image-text"]


def turn_on(apps, schema_editor):
    apps.get_model("corpus", "Domain").objects.filter(slug__in=TEXT_HEAVY).update(ocr_enabled=True)


def turn_off(apps, schema_editor):
    apps.get_model("corpus", "Domain").objects.filter(slug__in=TEXT_HEAVY).update(ocr_enabled=False)


class Migration(migrations.Migration):
    dependencies = [("corpus", "0013_conversations_and_domain_ocr")]

    operations = [migrations.RunPython(turn_on, turn_off)]
