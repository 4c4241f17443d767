"""The schema is truthful about the review endpoints: every status code they answer is declared, and the
codes they are seen answering (success, refusals, conflicts) are among the declared ones."""

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from corpus.models import ItemStatus
from review.services.queue import release_lease, take_image
from tests.corpus.factories import DomainFactory
from tests.review.conftest import make_pending_image

pytestmark = pytest.mark.django_db

# Answered by the platform for every endpoint (authentication, roles, throttling): not review's to declare.
GLOBAL = {401, 403, 429}

EXPECTED = {
    ("/api/v1/review/images/next/", "post"): {200, 204, 400, 503},
    ("/api/v1/review/images/{id}/", "get"): {200, 404, 503},
    ("/api/v1/review/images/{id}/take/", "post"): {200, 404, 409, 503},
    ("/api/v1/review/images/{id}/reopen/", "post"): {200, 404, 409, 503},
    ("/api/v1/review/images/{id}/renew/", "post"): {200, 404, 409, 503},
    ("/api/v1/review/images/{id}/release/", "post"): {200, 404, 503},
    ("/api/v1/review/captions/{id}/save/", "post"): {200, 400, 404, 409, 503},
    ("/api/v1/review/instructions/{id}/save/", "post"): {200, 400, 404, 409, 503},
    ("/api/v1/review/captions/{id}/history/", "get"): {200, 404, 503},
    ("/api/v1/review/instructions/{id}/history/", "get"): {200, 404, 503},
    ("/api/v1/captions/", "get"): {200, 400},
    ("/api/v1/instructions/", "get"): {200, 400},
    ("/api/v1/images/", "get"): {200, 400},
    ("/api/v1/domains/", "post"): {201, 400},
    ("/api/v1/domains/{slug}/", "patch"): {200, 400, 404},
}


@pytest.fixture(scope="module")
def declared():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    def codes(path, method):
        return {int(code) for code in schema["paths"][path][method]["responses"]}

    return codes


@pytest.mark.parametrize("path,method", sorted(EXPECTED))
def test_each_endpoint_declares_the_codes_it_answers(declared, path, method):
    assert EXPECTED[(path, method)] <= declared(path, method)


def test_the_codes_seen_in_use_are_declared(client, declared, annotator, second_annotator, settings):
    """Drive each review endpoint into each of its outcomes and check the schema knows the code."""
    settings.REVIEW_SECOND_PASS_SHARE = 0
    domain = DomainFactory()
    image, other = make_pending_image(domain, types=()), make_pending_image(domain, types=())
    caption = image.captions.get()
    client.force_login(annotator)
    seen = []

    def call(path_template, method, url, body=None):
        if method == "get":
            response = client.get(url)
        else:
            response = client.post(url, json.dumps(body or {}), content_type="application/json")
        seen.append((path_template, method, response.status_code))
        return response

    nxt = "/api/v1/review/images/next/"
    call(nxt, "post", nxt, {"domains": [2**64]})  # 400
    call(nxt, "post", nxt)  # 200: image
    images = "/api/v1/review/images/{id}/"
    call(images, "get", f"/api/v1/review/images/{image.pk}/")
    call(images, "get", "/api/v1/review/images/99999999/")
    for action in ("renew", "take", "reopen", "release"):
        template = f"/api/v1/review/images/{{id}}/{action}/"
        call(template, "post", f"/api/v1/review/images/{image.pk}/{action}/")
        call(template, "post", "/api/v1/review/images/99999999/" + action + "/")
    take_image(other.pk, second_annotator)  # `other` is bob's now
    call("/api/v1/review/images/{id}/renew/", "post", f"/api/v1/review/images/{other.pk}/renew/")  # 409
    call("/api/v1/review/images/{id}/take/", "post", f"/api/v1/review/images/{other.pk}/take/")  # 409
    take_image(image.pk, second_annotator)
    call(nxt, "post", nxt)  # 204: nothing waits
    release_lease(image.pk, second_annotator)
    save = "/api/v1/review/captions/{id}/save/"
    call("/api/v1/review/images/{id}/take/", "post", f"/api/v1/review/images/{image.pk}/take/")
    call(
        save,
        "post",
        f"/api/v1/review/captions/{caption.pk}/save/",
        {"expected_version": 1, "changes": {"x": 1}},
    )
    call(
        save,
        "post",
        f"/api/v1/review/captions/{caption.pk}/save/",
        {"expected_version": 1, "status": "accepted"},
    )
    call(save, "post", f"/api/v1/review/captions/{caption.pk}/save/", {"expected_version": 1})  # 409 stale
    call(save, "post", "/api/v1/review/captions/99999999/save/", {"expected_version": 1})
    history = "/api/v1/review/captions/{id}/history/"
    call(history, "get", f"/api/v1/review/captions/{caption.pk}/history/")
    call(history, "get", "/api/v1/review/captions/99999999/history/")
    call("/api/v1/captions/", "get", "/api/v1/captions/?image=" + str(2**64))

    codes = {code for _, _, code in seen}
    assert {200, 204, 400, 404, 409} <= codes  # every outcome was reached
    undeclared = [(p, m, c) for p, m, c in seen if c not in declared(p, m) | GLOBAL]
    assert not undeclared
    assert caption.__class__.objects.get(pk=caption.pk).status == ItemStatus.ACCEPTED
