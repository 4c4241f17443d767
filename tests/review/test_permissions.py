"""Annotators review, researchers read histories, admins see everything, outsiders get nothing."""

import pytest
from django.urls import reverse

from review.services.queue import claim_next_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def urls(pending_image):
    caption = pending_image.captions.get()
    return {
        "queue": ("get", reverse("review:queue")),
        "next": ("post", reverse("review:next")),
        "image": ("get", reverse("review:image", args=[pending_image.pk])),
        "panel": ("get", reverse("review:panel", args=[pending_image.pk])),
        "take": ("post", reverse("review:take", args=[pending_image.pk])),
        "reopen": ("post", reverse("review:reopen", args=[pending_image.pk])),
        "save": ("post", reverse("review:save", args=["caption", caption.pk])),
        "add": ("post", reverse("review:add_instruction", args=[pending_image.pk])),
        "validate": ("post", reverse("review:validate")),
        "regenerate": ("post", reverse("review:regenerate", args=["caption", caption.pk])),
        "second": ("get", reverse("review:second_pass")),
        "history": ("get", reverse("review:history", args=["caption", caption.pk])),
        "stats": ("get", reverse("review:stats")),
        "disagreements": ("get", reverse("review:disagreements")),
    }


READ_BY_RESEARCHERS = {"history"}
ADMIN_ONLY = {"stats", "disagreements"}


def _call(client, method, url):
    return getattr(client, method)(url)


def test_anonymous_pages_go_to_login(client, urls):
    for name, (method, url) in urls.items():
        response = _call(client, method, url)
        assert response.status_code == 302 and "/accounts/login/" in response.url, name


def test_outsiders_get_nothing(client, outsider, urls):
    client.force_login(outsider)
    for name, (method, url) in urls.items():
        assert _call(client, method, url).status_code == 403, name


def test_researchers_read_history_but_not_the_queue(client, researcher, urls):
    client.force_login(researcher)
    for name, (method, url) in urls.items():
        expected = 200 if name in READ_BY_RESEARCHERS else 403
        assert _call(client, method, url).status_code == expected, name


def test_annotators_review_but_do_not_see_admin_statistics(client, annotator, urls):
    client.force_login(annotator)
    for name, (method, url) in urls.items():
        status = _call(client, method, url).status_code
        if name in ADMIN_ONLY:
            assert status == 403, name
        else:
            assert status not in (401, 403), name


def test_admins_see_statistics(client, admin_user, urls):
    client.force_login(admin_user)
    for name in ADMIN_ONLY:
        assert _call(client, *urls[name]).status_code == 200, name


@pytest.fixture
def api_calls(pending_image):
    caption = pending_image.captions.get()
    return {
        "next": ("post", "/api/v1/review/images/next/"),
        "renew": ("post", f"/api/v1/review/images/{pending_image.pk}/renew/"),
        "take": ("post", f"/api/v1/review/images/{pending_image.pk}/take/"),
        "reopen": ("post", f"/api/v1/review/images/{pending_image.pk}/reopen/"),
        "release": ("post", f"/api/v1/review/images/{pending_image.pk}/release/"),
        "save": ("post", f"/api/v1/review/captions/{caption.pk}/save/"),
        "regenerate": ("post", f"/api/v1/review/captions/{caption.pk}/regenerate/"),
        "history": ("get", f"/api/v1/review/captions/{caption.pk}/history/"),
        "image": ("get", f"/api/v1/review/images/{pending_image.pk}/"),
    }


def test_api_refuses_anonymous_and_outsiders(client, outsider, api_calls):
    for name, (method, url) in api_calls.items():
        assert _call(client, method, url).status_code in (401, 403), name
    client.force_login(outsider)
    for name, (method, url) in api_calls.items():
        assert _call(client, method, url).status_code == 403, name


def test_api_researchers_read_history_only(client, researcher, annotator, pending_image, api_calls):
    claim_next_image(annotator)
    client.force_login(researcher)
    for name, (method, url) in api_calls.items():
        expected = 200 if name in ("history", "image") else 403
        assert _call(client, method, url).status_code == expected, name
