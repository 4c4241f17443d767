"""Data: every ReviewEvent row goes to the event table of its subject — a queue move to corpus.ImageEvent,
a second-pass move to review.SecondPassEvent (of the image's second pass) — with its from, to, actor, time
and note. The reverse copies them back (subject restored from the table they are in)."""

from django.db import migrations


def forward(apps, schema_editor):
    ReviewEvent = apps.get_model("review", "ReviewEvent")
    ImageEvent = apps.get_model("corpus", "ImageEvent")
    SecondPassEvent = apps.get_model("review", "SecondPassEvent")
    SecondPass = apps.get_model("review", "SecondPass")
    passes = dict(SecondPass.objects.values_list("image_id", "id"))
    images, seconds = [], []
    fields = ("image_id", "subject", "from_status", "to_status", "actor_id", "at", "note")
    for image_id, subject, from_status, to_status, actor_id, at, note in (
        ReviewEvent.objects.order_by("id").values_list(*fields).iterator(chunk_size=5000)
    ):
        common = {"from_status": from_status, "to_status": to_status, "actor_id": actor_id, "at": at, "note": note}
        if subject == "second_pass":
            if image_id in passes:  # a second pass deleted since has no row to hang its events on
                seconds.append(SecondPassEvent(second_pass_id=passes[image_id], **common))
        else:
            images.append(ImageEvent(image_id=image_id, **common))
        if len(images) >= 5000:
            ImageEvent.objects.bulk_create(images)
            images = []
    ImageEvent.objects.bulk_create(images)
    SecondPassEvent.objects.bulk_create(seconds)


def backward(apps, schema_editor):
    ReviewEvent = apps.get_model("review", "ReviewEvent")
    ImageEvent = apps.get_model("corpus", "ImageEvent")
    SecondPassEvent = apps.get_model("review", "SecondPassEvent")
    rows = [
        ReviewEvent(
            image_id=e.image_id,
            subject="queue",
            from_status=e.from_status,
            to_status=e.to_status,
            actor_id=e.actor_id,
            at=e.at,
            note=e.note[:200],
        )
        for e in ImageEvent.objects.order_by("id").iterator()
    ]
    rows += [
        ReviewEvent(
            image_id=e.second_pass.image_id,
            subject="second_pass",
            from_status=e.from_status,
            to_status=e.to_status,
            actor_id=e.actor_id,
            at=e.at,
            note=e.note[:200],
        )
        for e in SecondPassEvent.objects.select_related("second_pass").order_by("id").iterator()
        if e.from_status  # a second pass's first event ("sampled") had no ReviewEvent
    ]
    ReviewEvent.objects.bulk_create(rows, batch_size=5000)
    ImageEvent.objects.all().delete()
    SecondPassEvent.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("review", "0003_second_pass_events"), ("corpus", "0011_image_review_events")]

    operations = [migrations.RunPython(forward, backward)]
