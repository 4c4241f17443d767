"""Regeneration is a right, not a faucet: only the image's lease holder (or an admin) may ask, within an
hourly quota (429 with Retry-After on the API, a visible message on the page), and every request is a
recorded one-image job with who asked and what it cost."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from corpus.models import Caption
from generation import selectors
from generation.models import GenerationJob
from review.services.queue import claim_next_image
from tests.review.conftest import make_pending_image


@pytest.fixture
def image(db):
    return make_pending_image()


def regenerate_url(image):
    return f"/api/v1/review/captions/{image.captions.get().pk}/regenerate/"


def as_(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_only_the_lease_holder_may_ask_for_a_regeneration(image, annotator, second_annotator):
    # Nobody holds the image yet: asking is refused, and asking does not take the lease either.
    response = as_(annotator).post(regenerate_url(image))
    assert response.status_code == 403 and "holds this image" in response.json()["detail"]
    image.refresh_from_db()
    assert image.leased_by is None
    assert claim_next_image(second_annotator) == image.pk
    assert as_(annotator).post(regenerate_url(image)).status_code == 403  # another annotator holds it
    assert not GenerationJob.objects.exists()
    response = as_(second_annotator).post(regenerate_url(image))
    assert response.status_code == 202
    job = GenerationJob.objects.get(pk=response.json()["job"])
    assert (job.launched_by, job.is_regeneration) == (second_annotator, True)


@pytest.mark.django_db
def test_an_admin_may_ask_without_holding_the_image(image, admin_user):
    assert as_(admin_user).post(regenerate_url(image)).status_code == 202


@pytest.mark.django_db
def test_the_page_refuses_someone_who_does_not_hold_the_image(client, image, annotator):
    client.force_login(annotator)
    caption = image.captions.get()
    response = client.post(reverse("review:regenerate", args=["caption", caption.pk]))
    assert response.status_code == 409  # the review page shows a 409's body in the item (a 403 it would not)
    assert "holds this image" in response.content.decode()
    assert not GenerationJob.objects.exists()


@pytest.mark.django_db
def test_the_hourly_quota_answers_429_with_retry_after(image, annotator, settings):
    settings.REGENERATION_HOURLY_QUOTA = 3
    assert claim_next_image(annotator) == image.pk
    api = as_(annotator)
    assert [api.post(regenerate_url(image)).status_code for _ in range(3)] == [202] * 3
    # The oldest of the three was 50 minutes ago: the next one is allowed in about 10 minutes.
    oldest = GenerationJob.objects.order_by("pk").first()
    GenerationJob.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(minutes=50))
    response = api.post(regenerate_url(image))
    assert response.status_code == 429
    assert 590 <= int(response["Retry-After"]) <= 601
    assert "3 regenerations in the last hour" in response.json()["detail"]
    assert GenerationJob.objects.count() == 3
    # An hour after it, the oldest leaves the window and one more is allowed.
    GenerationJob.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(minutes=61))
    assert api.post(regenerate_url(image)).status_code == 202


@pytest.mark.django_db
def test_the_quota_is_per_person(image, annotator, admin_user, settings):
    settings.REGENERATION_HOURLY_QUOTA = 1
    assert claim_next_image(annotator) == image.pk
    assert as_(annotator).post(regenerate_url(image)).status_code == 202
    assert as_(annotator).post(regenerate_url(image)).status_code == 429
    assert as_(admin_user).post(regenerate_url(image)).status_code == 202


@pytest.mark.django_db
def test_the_page_shows_the_quota_message(client, image, annotator, settings):
    settings.REGENERATION_HOURLY_QUOTA = 1
    assert claim_next_image(annotator) == image.pk
    client.force_login(annotator)
    url = reverse("review:regenerate", args=["caption", image.captions.get().pk])
    assert client.post(url).status_code == 202
    response = client.post(url)
    assert response.status_code == 409 and int(response["Retry-After"]) > 0  # shown in the item, like a 409
    assert "1 regenerations in the last hour" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_quota_holds_under_concurrent_requests(annotator, settings, postgres):
    settings.REGENERATION_HOURLY_QUOTA = 5
    image = make_pending_image()
    assert claim_next_image(annotator) == image.pk
    barrier = threading.Barrier(8)
    codes = []

    def ask():
        try:
            barrier.wait(timeout=10)
            codes.append(as_(annotator).post(regenerate_url(image)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(codes) == [202] * 5 + [429] * 3
    assert GenerationJob.objects.filter(is_regeneration=True).count() == 5


@pytest.mark.django_db(transaction=True)
def test_each_request_is_recorded_with_who_asked_and_what_it_cost(
    eager, endpoints, fake, admin_user, annotator
):
    image = make_pending_image()
    assert claim_next_image(annotator) == image.pk
    as_(annotator).post(regenerate_url(image))
    job = GenerationJob.objects.get(is_regeneration=True)
    assert job.launched_by == annotator and Caption.objects.filter(image=image).count() == 2
    progress = selectors.progress(job)
    assert progress.cost > 0  # the fake's usage at the endpoint's prices
    client = APIClient()
    client.force_authenticate(admin_user)
    listed = client.get("/api/v1/generation/jobs/?is_regeneration=true").json()["results"]
    assert [(j["id"], j["launched_by"], j["is_regeneration"]) for j in listed] == [
        (job.pk, "ann-annotator", True)
    ]
    assert listed[0]["cost"] == f"{progress.cost:.6f}"
    from django.test import Client

    page = Client()
    page.force_login(admin_user)
    costs = page.get(reverse("generation:costs")).content.decode()
    assert "Regenerations by person" in costs and "ann-annotator" in costs
    assert f"${progress.cost:.4f}" in costs
    jobs_page = page.get(reverse("generation:jobs")).content.decode()
    assert "regeneration" in jobs_page and "ann-annotator" in jobs_page
