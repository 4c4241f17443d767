"""The acceptance of the checks on the review side: planted problems are flagged with their reason
beside their item on the review page, clean items are not; the queue can take the most-flagged image
first; the statistics page counts flags."""

import pytest
from django.urls import reverse

from corpus.models import Image, ReviewStatus
from corpus.rules import InstructionType as T
from corpus.services import items as item_service
from corpus.services import quality
from review.services import flag_order
from review.services.queue import take_image
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory

pytestmark = pytest.mark.django_db

CAPTION = "A red bus stands at a stop beside two people in grey coats, under a white church tower."


def image_with(domain, instructions):
    image = ImageFactory(domain=domain)
    caption = CaptionFactory(image=image, text=CAPTION)
    made = [item_service.create_instruction(image, caption=caption, **fields) for fields in instructions]
    return Image.objects.get(pk=image.pk), made


@pytest.fixture
def domain():
    quality.clear_caches()
    return DomainFactory(slug="streets")


def test_planted_problems_are_flagged_with_their_reason_on_the_review_page_and_clean_items_are_not(
    client, annotator, domain
):
    image, made = image_with(
        domain,
        [
            {"type": T.JUDGEMENT, "question": "Is the bus red?", "answer": "Yes"},
            {"type": T.JUDGEMENT, "question": "Is the tower white?", "answer": "Yes"},
            {"type": T.SHORT_VQA, "question": "What stands at the stop?", "answer": "a bus"},
            {"type": T.SHORT_VQA, "question": "what stands at the stop", "answer": "a red bus"},
            {
                "type": T.MULTIPLE_CHOICE,
                "question": "What colour are the coats?",
                "options": ["Grey", "grey.", "blue"],
                "answer": "A",
            },
            {"type": T.SHORT_VQA, "question": "How many people wait?", "answer": "5 people"},
            {
                "type": T.LONG_VQA,
                "question": "Describe the scene.",
                "answer": "A red bus waits at a stop under a white church tower.",
            },
        ],
    )
    take_image(image.pk, annotator)
    client.force_login(annotator)
    page = client.get(reverse("review:image", args=[image.pk])).content.decode()

    def block(item):
        start = page.index(f'id="item-instruction-{item.pk}"')
        return page[start : page.index("</article>", start)]

    yes_a, yes_b, first, duplicate, mcq, number, clean = made
    assert "all 2 Judgement answers of this image are Yes" in block(yes_a)
    assert "all 2 Judgement answers of this image are Yes" in block(yes_b)
    assert f"the same question as instruction {first.pk} of this image" in block(duplicate)
    assert "the answer option A says the same as option B" in block(mcq)
    assert "mentions the number 5, which its caption never mentions" in block(number)
    assert 'class="quality' not in block(clean)
    assert 'class="quality' not in block(first)


def test_the_most_flagged_pending_image_is_taken_first(annotator, domain):
    calm, _ = image_with(
        domain, [{"type": T.SHORT_VQA, "question": "What stands at the stop?", "answer": "a bus"}]
    )
    noisy, _ = image_with(
        domain,
        [
            {"type": T.SHORT_VQA, "question": "How many people wait?", "answer": "5 people"},
            {"type": T.SHORT_VQA, "question": "How many towers rise?", "answer": "3 towers"},
        ],
    )
    assert (calm.review_status, noisy.review_status) == (ReviewStatus.PENDING, ReviewStatus.PENDING)
    assert noisy.n_flags == 2 and calm.n_flags == 0
    assert flag_order.claim_most_flagged(annotator, domain_ids=[domain.pk]) == noisy.pk
    assert flag_order.claim_most_flagged(annotator, domain_ids=[domain.pk]) == calm.pk
    assert flag_order.claim_most_flagged(annotator, domain_ids=[domain.pk]) is None
    noisy.refresh_from_db()
    assert (noisy.review_status, noisy.leased_by_id) == (ReviewStatus.IN_REVIEW, annotator.pk)


def test_the_queue_page_button_takes_the_most_flagged_image(client, annotator, domain):
    image_with(domain, [{"type": T.SHORT_VQA, "question": "What stands at the stop?", "answer": "a bus"}])
    noisy, _ = image_with(domain, [{"type": T.SHORT_VQA, "question": "How many wait?", "answer": "5 people"}])
    client.force_login(annotator)
    assert "take-most-flagged" in client.get(reverse("review:queue")).content.decode()
    response = client.post(reverse("review:next_flagged"))
    assert response.status_code == 302 and response["Location"] == reverse("review:image", args=[noisy.pk])


def test_the_statistics_page_counts_flags_by_check_domain_type_and_model(client, admin_user, domain):
    image_with(
        domain,
        [{"type": T.SHORT_VQA, "question": "How many wait?", "answer": "5 people", "model_name": "m1"}],
    )
    client.force_login(admin_user)
    page = client.get(reverse("review:stats")).content.decode()
    start = page.index('id="flags"')
    table = page[start : page.index("</table>", start)]
    assert "domain: " + domain.name in table and "type: short_vqa" in table and "model: m1" in table
    assert "Not in the caption" in table


def test_the_api_takes_the_most_flagged_image_for_annotators_only(domain, annotator, researcher):
    from rest_framework.test import APIClient

    image_with(domain, [{"type": T.SHORT_VQA, "question": "What stands at the stop?", "answer": "a bus"}])
    noisy, _ = image_with(domain, [{"type": T.SHORT_VQA, "question": "How many wait?", "answer": "5 people"}])
    api = APIClient()
    api.force_authenticate(researcher)
    assert api.post("/api/v1/review/quality/next-flagged/", {}, format="json").status_code == 403
    api.force_authenticate(annotator)
    assert (
        api.post("/api/v1/review/quality/next-flagged/", {"domains": ["x"]}, format="json").status_code == 400
    )
    response = api.post("/api/v1/review/quality/next-flagged/", {"domains": [domain.pk]}, format="json")
    assert response.status_code == 200 and response.json() == {"image": noisy.pk}
    api.post("/api/v1/review/quality/next-flagged/", {}, format="json")
    assert api.post("/api/v1/review/quality/next-flagged/", {}, format="json").status_code == 204
