"""The scheduled sweep: Celery beat runs `review.sweep` every SWEEP_INTERVAL seconds; expired review and
second-pass leases return to their queues without anyone claiming, once, even with two beats."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections
from django.utils import timezone

from corpus.models import Caption, Image, ImageEvent, ItemStatus, ReviewStatus
from review.models import SecondPass, SecondPassEvent, SecondPassStatus
from review.services.queue import claim_next_image
from review.tasks import sweep
from tests.corpus.factories import DomainFactory
from tests.review.conftest import make_pending_image
from tests.workers import wait_for

pytestmark = pytest.mark.django_db


def past(seconds=1):
    return timezone.now() - timedelta(seconds=seconds)


def test_the_beat_schedule_runs_the_review_sweep_every_sweep_interval():
    from mminstruct_site.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["review-sweep"]
    assert entry == {"task": "review.sweep", "schedule": django_settings.SWEEP_INTERVAL}
    app.loader.import_default_modules()
    assert "review.sweep" in app.tasks


def test_sweep_returns_expired_leases_without_anyone_claiming(annotator, second_annotator, domain):
    with_drafts, decided, live = (make_pending_image(domain) for _ in range(3))
    for _ in range(3):
        claim_next_image(annotator, domain_ids=[domain.pk])
    decided.captions.update(status=ItemStatus.ACCEPTED)
    decided.instructions.update(status=ItemStatus.ACCEPTED)
    Image.objects.filter(pk__in=[with_drafts.pk, decided.pk]).update(lease_expires_at=past())
    # A second pass whose reviewer walked away, and one still being looked at.
    gone = SecondPass.objects.create(
        image=decided, status=SecondPassStatus.IN_REVIEW, reviewer=second_annotator, lease_expires_at=past()
    )
    busy = SecondPass.objects.create(
        image=live,
        status=SecondPassStatus.IN_REVIEW,
        reviewer=second_annotator,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )

    assert sweep() == {"leases": 2, "second_passes": 1, "samples_recovered": 0}

    status = dict(Image.objects.values_list("pk", "review_status"))
    assert status[with_drafts.pk] == ReviewStatus.PENDING and status[decided.pk] == ReviewStatus.REVIEWED
    assert status[live.pk] == ReviewStatus.IN_REVIEW
    assert not Image.objects.filter(pk__in=[with_drafts.pk, decided.pk], leased_by__isnull=False).exists()
    gone.refresh_from_db()
    busy.refresh_from_db()
    assert (gone.status, gone.reviewer) == (SecondPassStatus.PENDING, None)
    assert busy.status == SecondPassStatus.IN_REVIEW
    expired_events = ImageEvent.objects.filter(note="lease expired")
    assert sorted(expired_events.values_list("to_status", flat=True)) == ["pending", "reviewed"]
    assert list(gone.events.values_list("from_status", "to_status", "note")) == [
        ("in_review", "pending", "lease expired")
    ]
    assert sweep() == {"leases": 0, "second_passes": 0, "samples_recovered": 0}  # idempotent
    assert ImageEvent.objects.filter(note="lease expired").count() == 2
    assert SecondPassEvent.objects.filter(note="lease expired").count() == 1


def test_sweep_makes_the_second_pass_sample_a_crash_after_the_save_left_out(annotator, domain, settings):
    """A save that finishes an image samples it after its own commit; a crash in between leaves the
    image reviewed without its sample. The sweep makes it — once, with its first reviewer — and only for
    images in the share with an accepted item."""
    from review.services import second_pass
    from review.services.corrections import save_item

    settings.REVIEW_SECOND_PASS_SHARE = 0.5
    images = [make_pending_image(domain, types=()) for _ in range(20)]
    in_share = [i for i in images if second_pass.is_sampled(i.pk, 0.5)]
    assert 0 < len(in_share) < len(images)  # the share splits these images (sha256 of fixed ids)
    for image in images:
        claim_next_image(annotator, domain_ids=[domain.pk])
        caption = image.captions.get()
        decision = ItemStatus.REJECTED if image is images[-1] else ItemStatus.ACCEPTED
        assert save_item("caption", caption.pk, by=annotator, expected_version=1, status=decision).image_done
    made = set(SecondPass.objects.values_list("image_id", flat=True))
    assert made == {i.pk for i in in_share if i is not images[-1]}
    SecondPass.objects.all().delete()  # the crash: every sample lost after its save committed

    assert sweep()["samples_recovered"] == len(made)
    assert set(SecondPass.objects.values_list("image_id", flat=True)) == made
    assert set(SecondPass.objects.values_list("first_reviewer", flat=True)) == {annotator.pk}
    assert SecondPassEvent.objects.filter(note="sampled").count() == len(made)
    assert sweep()["samples_recovered"] == 0  # idempotent
    assert SecondPass.objects.count() == len(made)


def test_the_sweep_leaves_images_review_by_exception_finished_to_the_audit(domain, settings):
    """Auto-accept finishes images as its system user and never samples them (its audit share covers
    them): the sweep's safety net must not start sampling them either."""
    from review.services.corrections import save_item
    from review.services.verifier_report import system_user

    settings.REVIEW_SECOND_PASS_SHARE = 1.0
    system = system_user()
    image = make_pending_image(domain, types=())
    claim_next_image(system, domain_ids=[domain.pk])
    save_item("caption", image.captions.get().pk, by=system, expected_version=1, status=ItemStatus.ACCEPTED)
    SecondPass.objects.all().delete()
    assert ImageEvent.objects.filter(image=image, to_status="reviewed", actor=system).exists()
    assert sweep()["samples_recovered"] == 0
    assert not SecondPass.objects.exists()


def test_sweep_takes_every_expired_lease_in_batches(annotator, domain):
    template = make_pending_image(domain)
    Image.objects.bulk_create(
        Image(
            file=template.file.name,
            sha256=f"{n:064d}",
            domain=domain,
            review_status=ReviewStatus.IN_REVIEW,
            leased_by=annotator,
            lease_expires_at=past(),
        )
        for n in range(250)
    )
    from review.services import queue

    assert queue.sweep(batch=100)["leases"] == 250
    assert not Image.objects.filter(review_status=ReviewStatus.IN_REVIEW).exists()


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_return_each_lease_exactly_once(postgres, django_user_model):
    """Two beats by mistake: both sweeps race over the same expired leases, in their own connections."""
    holder = django_user_model.objects.create_user("holder", password="x")
    domain = DomainFactory()
    template = make_pending_image(domain)
    created = Image.objects.bulk_create(
        Image(
            file=template.file.name,
            sha256=f"{n:064d}",
            domain=domain,
            review_status=ReviewStatus.IN_REVIEW,
            leased_by=holder,
            lease_expires_at=past(),
        )
        for n in range(300)
    )
    Caption.objects.bulk_create(Caption(image=image, text="A draft.") for image in created)
    barrier = threading.Barrier(2)
    moved, errors = [], []

    def beat():
        try:
            barrier.wait()
            moved.append(sweep()["leases"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(moved) == 300
    assert ImageEvent.objects.filter(note="lease expired").count() == 300
    assert Image.objects.filter(review_status=ReviewStatus.PENDING).count() == 301
    assert connection.vendor == "postgresql"


# --- the real scheduler ------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_celery_beats_return_expired_leases_once_with_nobody_claiming(workers, django_user_model):
    holder = django_user_model.objects.create_user("holder", password="x")
    domain = DomainFactory()
    images = [make_pending_image(domain) for _ in range(3)]
    for _ in images:
        claim_next_image(holder, domain_ids=[domain.pk])
    Image.objects.filter(pk__in=[i.pk for i in images]).update(lease_expires_at=past())

    workers.env["SWEEP_INTERVAL"] = "1"
    workers.start("sweeper")
    for n in range(2):
        workers.start_beat(f"beat{n}", wait=False)
    wait_for(
        lambda: not Image.objects.filter(review_status=ReviewStatus.IN_REVIEW).exists(),
        60,
        "the sweeps to return the expired leases",
        interval=0.5,
    )
    # Both beats keep sending sweeps; a few more rounds must not move anything twice.
    sent = lambda: sum(workers.log(f"beat{n}").count("review.sweep") for n in range(2))  # noqa: E731
    floor = sent()
    wait_for(lambda: sent() >= floor + 4, 30, "the beats to send four more sweeps", interval=0.5)
    for image in images:
        events = list(
            ImageEvent.objects.filter(image=image).order_by("at", "id").values_list("note", "actor")
        )
        assert events == [("claimed", holder.pk), ("lease expired", None)]
    assert Image.objects.filter(review_status=ReviewStatus.PENDING).count() == 3
