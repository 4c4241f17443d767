import pytest
from django.db import connection

from corpus.models import ItemStatus, Revision
from corpus.rules import InstructionType
from generation.models import GenerationUnit
from review.models import HallucinationMark
from review.services.queue import claim_next_image
from tests.conftest import field_errors
from tests.review.conftest import make_pending_image

pytestmark = pytest.mark.django_db

NEXT = "/api/v1/review/images/next/"


def save_url(kind, pk):
    return f"/api/v1/review/{kind}s/{pk}/save/"


def test_next_item_leases_and_returns_the_image_with_its_drafts(client, annotator, pending_image):
    client.force_login(annotator)
    response = client.post(NEXT, {}, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == pending_image.pk and body["review_status"] == "in_review"
    assert body["domain"] == pending_image.domain.slug and body["file"].endswith(pending_image.file.name)
    assert body["page"] == f"/review/image/{pending_image.pk}/"
    assert body["lease_expires_at"]
    detail = client.get(body["detail"]).json()
    assert len(detail["captions"]) == 1 and len(detail["instructions"]) == 2
    assert detail["instructions"][0]["version"] == 1
    assert client.post(NEXT, {}, content_type="application/json").status_code == 204


def test_next_item_is_one_query_beyond_authentication(
    client, annotator, pending_image, django_assert_max_num_queries
):
    client.force_login(annotator)
    client.get("/api/v1/review/images/999999/")  # warm the session and role lookups' code paths
    # session, user, roles + the claim statement (+ one retry only when the queue looks empty).
    # (SQLite takes the portable compare-and-swap path: sweep, pick, swap, event, read — a handful more.)
    with django_assert_max_num_queries(4 if connection.vendor == "postgresql" else 12):
        assert client.post(NEXT, {}, content_type="application/json").status_code == 200


def test_next_item_respects_the_domains_asked_for(client, annotator, pending_image):
    other = make_pending_image()
    client.force_login(annotator)
    body = client.post(NEXT, {"domains": [other.domain_id]}, content_type="application/json").json()
    assert body["id"] == other.pk
    bad = client.post(NEXT, {"domains": ["x"]}, content_type="application/json")
    assert bad.status_code == 400


def test_renew_and_release(client, annotator, second_annotator, pending_image):
    claim_next_image(annotator)
    client.force_login(second_annotator)
    refused = client.post(f"/api/v1/review/images/{pending_image.pk}/renew/")
    assert refused.status_code == 409 and refused.json()["code"] == "lease_held"
    client.force_login(annotator)
    assert "lease_expires_at" in client.post(f"/api/v1/review/images/{pending_image.pk}/renew/").json()
    released = client.post(f"/api/v1/review/images/{pending_image.pk}/release/")
    assert released.json() == {"image": pending_image.pk, "review_status": "pending"}
    assert client.post("/api/v1/review/images/999999/renew/").status_code == 404


def test_save_with_version_then_stale_save_is_409_with_both_versions(client, annotator, pending_image):
    claim_next_image(annotator)
    client.force_login(annotator)
    item = pending_image.instructions.get(type=InstructionType.MULTIPLE_CHOICE)
    ok = client.post(
        save_url("instruction", item.pk),
        {
            "expected_version": 1,
            "changes": {"answer": "D"},
            "status": "accepted",
            "hallucinations": [{"category": "count", "field": "question", "span_start": 0, "span_end": 4}],
        },
        content_type="application/json",
    )
    assert ok.status_code == 200, ok.json()
    assert ok.json()["version"] == 2 and ok.json()["answer"] == "D"
    mark = HallucinationMark.objects.get()
    assert mark.span_text == item.question[:4] and mark.revision == Revision.objects.get(
        instruction=item, version=2
    )
    stale = client.post(
        save_url("instruction", item.pk),
        {"expected_version": 1, "changes": {"answer": "A"}},
        content_type="application/json",
    )
    assert stale.status_code == 409
    body = stale.json()
    assert body["code"] == "stale_version"
    assert body["yours"]["version"] == 1 and body["yours"]["changes"] == {"answer": "A"}
    assert body["current"]["version"] == 2 and body["current"]["answer"] == "D"
    item.refresh_from_db()
    assert item.answer == "D"


def test_save_that_breaks_rules_or_has_a_bad_span_is_400(client, annotator, pending_image):
    claim_next_image(annotator)
    client.force_login(annotator)
    item = pending_image.instructions.get(type=InstructionType.SHORT_VQA)
    broken = client.post(
        save_url("instruction", item.pk),
        {
            "expected_version": 1,
            "changes": {"answer": "a very long answer that goes on and on for many words"},
            "status": "accepted",
        },
        content_type="application/json",
    )
    assert broken.status_code == 400 and "Short VQA answer" in field_errors(broken)["answer"][0]
    span = client.post(
        save_url("instruction", item.pk),
        {
            "expected_version": 1,
            "hallucinations": [{"category": "object", "field": "answer", "span_start": 3, "span_end": 99}],
        },
        content_type="application/json",
    )
    assert span.status_code == 400 and "outside the answer" in field_errors(span)["hallucinations"][0]
    no_reason = client.post(
        save_url("instruction", item.pk),
        {"expected_version": 1, "status": "rejected"},
        content_type="application/json",
    )
    assert no_reason.status_code == 400 and "reason" in field_errors(no_reason)
    item.refresh_from_db()
    assert item.version == 1 and not HallucinationMark.objects.exists()


def test_save_on_an_image_someone_else_holds_is_409(client, annotator, second_annotator, pending_image):
    claim_next_image(annotator)
    client.force_login(second_annotator)
    caption = pending_image.captions.get()
    response = client.post(
        save_url("caption", caption.pk),
        {"expected_version": 1, "status": "accepted"},
        content_type="application/json",
    )
    assert response.status_code == 409 and response.json()["code"] == "lease_held"


def test_history_lists_revisions_in_few_queries(
    client, annotator, researcher, pending_image, django_assert_max_num_queries
):
    claim_next_image(annotator)
    client.force_login(annotator)
    caption = pending_image.captions.get()
    for version, text in enumerate(["one fix", "two fixes", "three fixes"], start=1):
        assert (
            client.post(
                save_url("caption", caption.pk),
                {"expected_version": version, "changes": {"text": text}},
                content_type="application/json",
            ).status_code
            == 200
        )
    client.force_login(researcher)
    with django_assert_max_num_queries(6):
        response = client.get(f"/api/v1/review/captions/{caption.pk}/history/")
    results = response.json()["results"]
    assert [r["version"] for r in results] == [4, 3, 2]
    assert results[0]["after"]["text"] == "three fixes" and results[0]["by"] == "ann-annotator"


def test_regenerating_an_instruction_twice_queues_two_rounds_of_its_type(client, annotator, pending_image):
    client.force_login(annotator)
    assert claim_next_image(annotator) == pending_image.pk  # only the lease holder may ask
    item = pending_image.instructions.first()
    url = f"/api/v1/review/instructions/{item.pk}/regenerate/"
    first = client.post(url)
    second = client.post(url)
    assert first.status_code == second.status_code == 202
    units = GenerationUnit.objects.filter(image=pending_image).order_by("round")
    assert [(u.stage, u.instruction_type) for u in units] == [("instructions", item.type)] * 2
    assert units[0].round != units[1].round  # a new round, not deduplicated against the first
    assert {u.job_id for u in units} == {first.json()["job"], second.json()["job"]}


def test_regenerate_instructions_without_a_caption_is_refused_with_the_reason(
    client, annotator, pending_image
):
    client.force_login(annotator)
    assert claim_next_image(annotator) == pending_image.pk
    pending_image.captions.all().delete()
    item = pending_image.instructions.first()
    response = client.post(f"/api/v1/review/instructions/{item.pk}/regenerate/")
    assert response.status_code == 409
    assert "no caption" in response.json()["detail"]
    assert not GenerationUnit.objects.exists()


def test_api_accepts_token_auth(client, annotator, pending_image):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=annotator)
    response = client.post(NEXT, {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert pending_image.captions.get().status == ItemStatus.DRAFT
