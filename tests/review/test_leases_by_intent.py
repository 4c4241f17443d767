"""Leases only by intent: reading an image never claims it, renewing or saving never takes an image one
did not hold, taking and reopening are POSTs that write an event. A holder whose lease lapsed gets their
image back when nobody took it."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from corpus.models import Image, ImageEvent, ItemStatus, ReviewStatus, Revision
from review.models import SecondPass
from review.services.queue import claim_next_image, sweep_expired_leases
from tests.corpus.factories import DomainFactory
from tests.review.conftest import make_pending_image

pytestmark = pytest.mark.django_db


def queue_state():
    """Everything a claim, a renew or a reopen would change."""
    images = list(
        Image.objects.order_by("pk").values_list("pk", "review_status", "leased_by", "lease_expires_at")
    )
    return images, ImageEvent.objects.count(), SecondPass.objects.count()


def reviewed_image(domain, user):
    """An image `user` reviewed completely (its drafts accepted, its lease ended)."""
    image = make_pending_image(domain, types=())
    claim_next_image(user, domain_ids=[domain.pk])
    caption = image.captions.get()
    from review.services.corrections import save_item

    save_item("caption", caption.pk, by=user, expected_version=1, status=ItemStatus.ACCEPTED)
    image.refresh_from_db()
    assert image.review_status == ReviewStatus.REVIEWED
    return image


def expire(image):
    Image.objects.filter(pk=image.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_opening_the_review_page_or_its_panel_never_claims(client, annotator, pending_image):
    client.force_login(annotator)
    before = queue_state()
    page = client.get(reverse("review:image", args=[pending_image.pk]))
    panel = client.get(reverse("review:panel", args=[pending_image.pk]))
    assert page.status_code == panel.status_code == 200
    assert queue_state() == before
    html = page.content.decode()
    assert 'data-readonly="true"' in html and "This image waits for review." in html
    assert (
        f'action="{reverse("review:take", args=[pending_image.pk])}"' in html and "Review this image" in html
    )
    assert "<fieldset disabled>" in html


def test_opening_a_reviewed_image_offers_reopen_and_changes_nothing(client, annotator, settings):
    settings.REVIEW_SECOND_PASS_SHARE = 0
    image = reviewed_image(DomainFactory(), annotator)
    client.force_login(annotator)
    before = queue_state()
    html = client.get(reverse("review:image", args=[image.pk])).content.decode()
    assert queue_state() == before
    assert (
        "This image is reviewed." in html and f'action="{reverse("review:reopen", args=[image.pk])}"' in html
    )


def test_review_this_image_takes_it_and_its_page_becomes_editable(client, annotator, pending_image):
    client.force_login(annotator)
    response = client.post(reverse("review:take", args=[pending_image.pk]))
    assert response.status_code == 302 and response.url == reverse("review:image", args=[pending_image.pk])
    pending_image.refresh_from_db()
    assert (pending_image.review_status, pending_image.leased_by) == (ReviewStatus.IN_REVIEW, annotator)
    event = ImageEvent.objects.get(image=pending_image)
    assert (event.from_status, event.to_status, event.actor, event.note) == (
        "pending",
        "in_review",
        annotator,
        "opened",
    )
    assert 'data-readonly="false"' in client.get(response.url).content.decode()


def test_taking_an_image_someone_else_holds_is_refused_with_who_holds_it(
    client, annotator, second_annotator, pending_image
):
    claim_next_image(second_annotator)
    client.force_login(annotator)
    before = queue_state()
    page = client.post(reverse("review:take", args=[pending_image.pk]))
    assert page.status_code == 409 and "bob-annotator is reviewing this image now" in page.content.decode()
    api = client.post(f"/api/v1/review/images/{pending_image.pk}/take/")
    assert api.status_code == 409 and api.json()["code"] == "lease_held"
    assert queue_state() == before


def test_reopening_a_reviewed_image_is_an_explicit_post_that_writes_an_event(client, annotator, settings):
    settings.REVIEW_SECOND_PASS_SHARE = 0
    domain = DomainFactory()
    by_page, by_api = reviewed_image(domain, annotator), reviewed_image(domain, annotator)
    client.force_login(annotator)
    # Taking is not reopening: a reviewed image stays reviewed unless reopened.
    refused = client.post(f"/api/v1/review/images/{by_api.pk}/take/")
    assert refused.status_code == 409 and refused.json()["code"] == "not_reviewable"
    assert "reopen" in refused.json()["detail"]
    assert client.post(reverse("review:reopen", args=[by_page.pk])).status_code == 302
    reopened = client.post(f"/api/v1/review/images/{by_api.pk}/reopen/")
    assert reopened.status_code == 200 and reopened.json()["image"] == by_api.pk
    for image in (by_page, by_api):
        image.refresh_from_db()
        assert (image.review_status, image.leased_by) == (ReviewStatus.IN_REVIEW, annotator)
        event = ImageEvent.objects.filter(image=image).latest("at", "id")
        assert (event.from_status, event.to_status, event.actor, event.note) == (
            "reviewed",
            "in_review",
            annotator,
            "reopened",
        )


def test_annotator_cannot_renew_images_they_never_held(client, annotator, settings):
    """The probe of the issue: 20 renews over reviewed and pending images one never held change nothing."""
    settings.REVIEW_SECOND_PASS_SHARE = 0
    domain = DomainFactory()
    someone = annotator
    from django.contrib.auth.models import Group

    stranger = type(annotator).objects.create_user("stranger", password="x")
    stranger.groups.add(Group.objects.get(name="annotator"))
    images = [reviewed_image(domain, someone) for _ in range(3)] + [
        make_pending_image(domain) for _ in range(2)
    ]
    client.force_login(stranger)
    before = queue_state()
    for _ in range(4):
        for image in images:
            response = client.post(f"/api/v1/review/images/{image.pk}/renew/")
            assert response.status_code == 409 and response.json()["code"] == "not_held", response.json()
    assert queue_state() == before


def test_save_on_an_image_never_held_is_refused_and_writes_nothing(client, annotator, pending_image):
    client.force_login(annotator)
    caption = pending_image.captions.get()
    api = client.post(
        f"/api/v1/review/captions/{caption.pk}/save/",
        {"expected_version": 1, "status": "accepted"},
        content_type="application/json",
    )
    assert api.status_code == 409 and api.json()["code"] == "not_held"
    page = client.post(
        reverse("review:save", args=["caption", caption.pk]),
        {"expected_version": 1, "action": "accept", "text": "x"},
    )
    assert page.status_code == 409 and "You do not hold this image" in page.content.decode()
    added = client.post(
        reverse("review:add_instruction", args=[pending_image.pk]),
        {"type": "judgement", "question": "Is there a cat?", "answer": "No"},
    )
    assert added.status_code == 409
    caption.refresh_from_db()
    assert caption.version == 1 and caption.status == ItemStatus.DRAFT
    assert not Revision.objects.exists() and not ImageEvent.objects.exists()
    assert pending_image.instructions.count() == 2


def test_a_lapsed_lease_nobody_took_comes_back_on_renew_even_after_the_sweep(
    client, annotator, pending_image
):
    claim_next_image(annotator)
    expire(pending_image)
    assert sweep_expired_leases() == 1
    pending_image.refresh_from_db()
    assert pending_image.review_status == ReviewStatus.PENDING and pending_image.leased_by is None
    client.force_login(annotator)
    response = client.post(f"/api/v1/review/images/{pending_image.pk}/renew/")
    assert response.status_code == 200, response.json()
    pending_image.refresh_from_db()
    assert (pending_image.review_status, pending_image.leased_by) == (ReviewStatus.IN_REVIEW, annotator)
    assert ImageEvent.objects.filter(image=pending_image).latest("at", "id").note == "lease taken back"


def test_a_lapsed_lease_nobody_took_comes_back_on_save(client, annotator, pending_image):
    claim_next_image(annotator)
    expire(pending_image)
    sweep_expired_leases()
    client.force_login(annotator)
    caption = pending_image.captions.get()
    response = client.post(
        f"/api/v1/review/captions/{caption.pk}/save/",
        {"expected_version": 1, "changes": {"text": "My edit, saved after a long lunch."}},
        content_type="application/json",
    )
    assert response.status_code == 200, response.json()
    caption.refresh_from_db()
    assert caption.text == "My edit, saved after a long lunch."


def test_a_lapsed_lease_someone_else_took_is_not_given_back(
    client, annotator, second_annotator, pending_image
):
    claim_next_image(annotator)
    expire(pending_image)
    sweep_expired_leases()
    assert claim_next_image(second_annotator) == pending_image.pk
    client.force_login(annotator)
    response = client.post(f"/api/v1/review/images/{pending_image.pk}/renew/")
    assert response.status_code == 409 and response.json()["code"] == "lease_held"
    pending_image.refresh_from_db()
    assert pending_image.leased_by == second_annotator


def test_a_lapsed_image_someone_took_and_gave_back_is_no_longer_the_first_holders(
    client, annotator, second_annotator, pending_image
):
    from review.services.queue import release_lease

    claim_next_image(annotator)
    expire(pending_image)
    sweep_expired_leases()
    claim_next_image(second_annotator)
    release_lease(pending_image.pk, second_annotator)
    client.force_login(annotator)
    before = queue_state()
    response = client.post(f"/api/v1/review/images/{pending_image.pk}/renew/")
    assert response.status_code == 409 and response.json()["code"] == "not_held"
    assert queue_state() == before


def test_another_persons_expired_lease_is_taken_only_by_a_post(
    client, annotator, second_annotator, pending_image
):
    claim_next_image(second_annotator)
    expire(pending_image)
    client.force_login(annotator)
    renew = client.post(f"/api/v1/review/images/{pending_image.pk}/renew/")
    assert renew.status_code == 409 and renew.json()["code"] == "not_held"
    pending_image.refresh_from_db()
    assert pending_image.leased_by == second_annotator
    take = client.post(f"/api/v1/review/images/{pending_image.pk}/take/")
    assert take.status_code == 200
    pending_image.refresh_from_db()
    assert pending_image.leased_by == annotator
    notes = list(
        ImageEvent.objects.filter(image=pending_image).order_by("at", "id").values_list("note", flat=True)
    )
    assert notes == ["claimed", "lease expired", "opened"]


def test_the_prefetched_panel_of_a_claimed_image_is_editable(client, annotator, domain):
    make_pending_image(domain)
    client.force_login(annotator)
    claimed = client.post("/api/v1/review/images/next/", {}, content_type="application/json").json()
    before = queue_state()
    panel = client.get(reverse("review:panel", args=[claimed["id"]]))
    assert 'data-readonly="false"' in panel.content.decode()
    assert queue_state() == before


def test_no_review_get_changes_the_queue(
    client, annotator, second_annotator, researcher, admin_user, settings
):
    """Every page and API read of the review app, as every role that may read it: nothing moves."""
    settings.REVIEW_SECOND_PASS_SHARE = 1.0
    domain = DomainFactory()
    reviewed = reviewed_image(domain, second_annotator)
    held, expired = make_pending_image(domain), make_pending_image(domain)
    claim_next_image(second_annotator)
    claim_next_image(second_annotator)
    expire(expired)
    pending = make_pending_image(domain)
    caption = held.captions.get()  # a caption being worked on
    urls = [
        reverse("review:queue"),
        reverse("review:second_pass"),
        reverse("review:stats"),
        reverse("review:disagreements"),
        reverse("review:history", args=["caption", caption.pk]),
        reverse("review:item", args=["caption", caption.pk]),
        f"/api/v1/review/captions/{caption.pk}/history/",
    ]
    for image in (pending, held, reviewed, expired):
        urls += [
            reverse("review:image", args=[image.pk]),
            reverse("review:panel", args=[image.pk]),
            reverse("review:previous", args=[image.pk]),
            f"/api/v1/review/images/{image.pk}/",
        ]
    before = queue_state()
    for user in (annotator, second_annotator, researcher, admin_user):
        client.force_login(user)
        for url in urls:
            assert client.get(url).status_code in (200, 302, 403), url
    assert queue_state() == before
