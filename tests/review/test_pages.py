import pytest
from django.urls import reverse

from corpus.models import Image, ItemStatus, ReviewStatus, Revision
from corpus.rules import InstructionType
from generation.models import GenerationJob
from review.models import HallucinationMark
from review.services.queue import claim_next_image
from tests.corpus.factories import CaptionFactory, DomainFactory
from tests.review.conftest import make_pending_image

pytestmark = pytest.mark.django_db


def _mcq(image):
    return image.instructions.get(type=InstructionType.MULTIPLE_CHOICE)


def test_next_leases_an_image_and_opens_its_review_page(client, annotator, pending_image):
    client.force_login(annotator)
    response = client.post(reverse("review:next"))
    assert response.status_code == 302 and response.url == f"/review/image/{pending_image.pk}/"
    page = client.get(response.url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "What colour is the corner" in html and "Guidelines for" in html
    assert "Multiple-Choice" in html and 'class="full-res"' in html
    pending_image.refresh_from_db()
    assert pending_image.leased_by == annotator


def test_an_empty_queue_says_so(client, annotator):
    client.force_login(annotator)
    response = client.post(reverse("review:next"), follow=True)
    assert "Nothing is waiting for review" in response.content.decode()


def test_fix_and_accept_saves_a_revision_with_the_hallucination_mark(client, annotator, pending_image):
    client.force_login(annotator)
    claim_next_image(annotator)
    item = _mcq(pending_image)
    response = client.post(
        reverse("review:save", args=["instruction", item.pk]),
        {
            "expected_version": item.version,
            "action": "accept",
            "type": item.type,
            "question": item.question,
            "options": ["red", "green", "blue", "black", "", ""],
            "answer": "C",
            "mark_category": ["attribute"],
            "mark_field": ["answer"],
            "mark_start": [""],
            "mark_end": [""],
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200, response.content.decode()
    item.refresh_from_db()
    assert (item.answer, item.status, item.version) == ("C", ItemStatus.ACCEPTED, 2)
    rev = Revision.objects.get(instruction=item, version=2)
    assert rev.before["answer"] == "B" and rev.after["answer"] == "C" and rev.by == annotator
    mark = HallucinationMark.objects.get()
    assert (mark.instruction, mark.revision, mark.category, mark.item_type) == (
        item,
        rev,
        "attribute",
        InstructionType.MULTIPLE_CHOICE,
    )
    assert "⚑ Attribute" in response.content.decode()


def test_stale_save_returns_conflict_with_both_versions(client, annotator, pending_image):
    client.force_login(annotator)
    claim_next_image(annotator)
    item = pending_image.instructions.get(type=InstructionType.SHORT_VQA)
    first = {"expected_version": 1, "action": "save", "type": item.type, "question": item.question}
    assert (
        client.post(
            reverse("review:save", args=["instruction", item.pk]), {**first, "answer": "teal"}
        ).status_code
        == 200
    )
    response = client.post(reverse("review:save", args=["instruction", item.pk]), {**first, "answer": "navy"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "changed while you were editing" in html and "navy" in html and "teal" in html
    item.refresh_from_db()
    assert item.answer == "teal" and item.version == 2


def test_reject_needs_a_reason(client, annotator, pending_image):
    client.force_login(annotator)
    claim_next_image(annotator)
    caption = pending_image.captions.get()
    url = reverse("review:save", args=["caption", caption.pk])
    response = client.post(url, {"expected_version": 1, "action": "reject", "text": caption.text})
    assert response.status_code == 400 and "Give a reason" in response.content.decode()
    response = client.post(
        url, {"expected_version": 1, "action": "reject", "text": caption.text, "reason": "a dog, not a cat"}
    )
    assert response.status_code == 200
    caption.refresh_from_db()
    assert (caption.status, caption.reason) == (ItemStatus.REJECTED, "a dog, not a cat")


def test_breaking_the_type_rules_is_refused_with_the_rule(client, annotator, pending_image):
    client.force_login(annotator)
    claim_next_image(annotator)
    item = _mcq(pending_image)
    response = client.post(
        reverse("review:save", args=["instruction", item.pk]),
        {
            "expected_version": 1,
            "action": "accept",
            "type": item.type,
            "question": item.question,
            "options": item.options,
            "answer": "F",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "must be the letter of one of the options" in html
    assert 'name="answer" data-field="answer" value="F"' in html  # what was typed stays on the page
    item.refresh_from_db()
    assert item.version == 1


def test_validate_endpoint_reports_the_rules_of_corpus(client, annotator):
    client.force_login(annotator)
    response = client.post(
        reverse("review:validate"),
        {"type": "judgement", "question": "Is it red?", "answer": "Maybe"},
        HTTP_ACCEPT="application/json",
    )
    assert response.json() == {
        "valid": False,
        "violations": ["answer: a Judgement answer must be Yes or No, got 'Maybe'"],
    }
    ok = client.post(
        reverse("review:validate"), {"type": "judgement", "question": "Is it red?", "answer": "yes"}
    )
    assert "Follows the rules" in ok.content.decode()


def test_saving_someone_elses_leased_image_is_refused(client, annotator, second_annotator, pending_image):
    claim_next_image(annotator)
    client.force_login(second_annotator)
    caption = pending_image.captions.get()
    response = client.post(
        reverse("review:save", args=["caption", caption.pk]),
        {"expected_version": 1, "action": "accept", "text": caption.text},
    )
    assert (
        response.status_code == 409 and "ann-annotator is reviewing this image" in response.content.decode()
    )
    caption.refresh_from_db()
    assert caption.status == ItemStatus.DRAFT


def test_after_my_lease_expired_and_someone_took_the_image_my_save_is_refused(
    client, annotator, second_annotator, pending_image
):
    from datetime import timedelta

    from django.utils import timezone

    claim_next_image(annotator)
    Image.objects.filter(pk=pending_image.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(second_annotator)
    # Looking changes nothing; "Review this image" (a POST) takes the image whose lease ran out.
    assert client.get(reverse("review:image", args=[pending_image.pk])).status_code == 200
    pending_image.refresh_from_db()
    assert pending_image.leased_by == annotator
    assert client.post(reverse("review:take", args=[pending_image.pk])).status_code == 302
    pending_image.refresh_from_db()
    assert pending_image.leased_by == second_annotator
    client.force_login(annotator)
    caption = pending_image.captions.get()
    response = client.post(
        reverse("review:save", args=["caption", caption.pk]),
        {"expected_version": 1, "action": "accept", "text": "my late edit"},
    )
    assert response.status_code == 409
    caption.refresh_from_db()
    assert caption.text != "my late edit" and caption.version == 1


def test_deciding_the_last_draft_finishes_the_image_and_tells_the_page(client, annotator, domain, settings):
    settings.REVIEW_SECOND_PASS_SHARE = 0
    image = make_pending_image(domain, types=())
    client.force_login(annotator)
    claim_next_image(annotator)
    caption = image.captions.get()
    response = client.post(
        reverse("review:save", args=["caption", caption.pk]),
        {"expected_version": 1, "action": "accept", "text": caption.text},
    )
    assert "imageDone" in response["HX-Trigger-After-Settle"]
    image.refresh_from_db()
    assert image.review_status == ReviewStatus.REVIEWED and image.leased_by is None


def test_add_a_missing_instruction_by_hand(client, annotator, pending_image):
    client.force_login(annotator)
    claim_next_image(annotator)
    url = reverse("review:add_instruction", args=[pending_image.pk])
    bad = client.post(url, {"type": "judgement", "question": "Is there a cat?", "answer": "Perhaps"})
    assert bad.status_code == 400 and "Yes or No" in bad.content.decode()
    good = client.post(url, {"type": "judgement", "question": "Is there a cat?", "answer": "no"})
    assert good.status_code == 200
    added = pending_image.instructions.get(question="Is there a cat?")
    assert (added.origin, added.status, added.answer, added.created_by) == (
        "person",
        "accepted",
        "No",
        annotator,
    )


def test_regenerate_a_caption_queues_a_one_image_generation_job(client, annotator, pending_image):
    client.force_login(annotator)
    assert claim_next_image(annotator) == pending_image.pk  # only the lease holder may ask
    caption = pending_image.captions.get()
    response = client.post(reverse("review:regenerate", args=["caption", caption.pk]))
    assert response.status_code == 202
    job = GenerationJob.objects.get()
    assert (job.stage, job.launched_by) == ("captions", annotator)
    unit = job.units.get()
    assert (unit.image_id, unit.stage, unit.instruction_type) == (pending_image.pk, "captions", "")


def test_history_shows_revisions_as_diffs(client, annotator, researcher, pending_image):
    client.force_login(annotator)
    claim_next_image(annotator)
    caption = pending_image.captions.get()
    client.post(
        reverse("review:save", args=["caption", caption.pk]),
        {"expected_version": 1, "action": "save", "text": "A small test image with a gradient."},
    )
    client.force_login(researcher)
    response = client.get(reverse("review:history", args=["caption", caption.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<del>" in html and "<ins>" in html and "v2" in html


def test_model_output_is_escaped_on_the_review_page(client, annotator, domain):
    image = make_pending_image(domain, types=())
    CaptionFactory(image=image, text='<script>alert("x")</script><img src=x onerror=alert(1)>')
    domain.guidelines = "**Bold** <script>alert(2)</script> [link](javascript:alert(3))"
    domain.save()
    client.force_login(annotator)
    html = client.get(reverse("review:image", args=[image.pk])).content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<img src=x onerror" not in html
    assert "<strong>Bold</strong>" in html and "alert(2)</script>" not in html and "javascript:" not in html


def test_queue_page_counts_pending_per_domain_in_few_queries(
    client, annotator, django_assert_max_num_queries
):
    for _ in range(3):
        d = DomainFactory()
        make_pending_image(d)
        make_pending_image(d)
    client.force_login(annotator)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("review:queue"))
    assert response.status_code == 200 and response.content.decode().count('class="pending-count">2<') == 3


def test_review_page_queries_do_not_grow_with_items(client, annotator, domain, django_assert_max_num_queries):
    image = make_pending_image(
        domain, types=[InstructionType.MULTIPLE_CHOICE] * 6 + [InstructionType.LONG_VQA] * 4
    )
    claim_next_image(annotator)
    client.force_login(annotator)
    # 18: the automatic checks' flags and the verifier's verdicts are one prefetch each.
    with django_assert_max_num_queries(18):
        response = client.get(reverse("review:image", args=[image.pk]))
    assert 'data-readonly="false"' in response.content.decode()
    assert response.content.decode().count('class="item ') == 11


def test_changing_an_mcq_to_another_type_drops_its_hidden_options(client, annotator, pending_image):
    client.force_login(annotator)
    claim_next_image(annotator)
    item = _mcq(pending_image)
    response = client.post(
        reverse("review:save", args=["instruction", item.pk]),
        {
            "expected_version": 1,
            "action": "accept",
            "type": "judgement",
            "question": "Is the corner green?",
            "options": ["red", "green", "blue", "black"],
            "answer": "yes",
        },
    )
    assert response.status_code == 200, response.content.decode()
    item.refresh_from_db()
    assert (item.type, item.options, item.answer) == ("judgement", [], "Yes")


def test_next_resumes_an_image_the_annotator_still_holds_before_claiming(client, annotator, domain):
    held, other = make_pending_image(domain), make_pending_image(domain)
    claim_next_image(annotator)  # e.g. the tab was closed
    client.force_login(annotator)
    assert client.post(reverse("review:next")).url == f"/review/image/{held.pk}/"
    # Skipping it releases it and moves on to a new claim.
    assert client.post(reverse("review:next"), {"current": held.pk}).url == f"/review/image/{other.pk}/"
    held.refresh_from_db()
    assert held.review_status == ReviewStatus.PENDING and held.leased_by is None


def test_history_page_queries_do_not_grow_with_revisions(
    client, annotator, pending_image, django_assert_max_num_queries
):
    from review.services.corrections import MarkInput, save_item

    claim_next_image(annotator)
    caption = pending_image.captions.get()
    for version in range(1, 6):
        save_item(
            "caption",
            caption.pk,
            by=annotator,
            expected_version=version,
            changes={"text": f"Edit number {version} of the caption."},
            marks=[MarkInput("object")],
        )
    client.force_login(annotator)
    with django_assert_max_num_queries(9):
        response = client.get(reverse("review:history", args=["caption", caption.pk]))
    html = response.content.decode()
    assert (
        html.count('class="revision"') == 5 and html.count("⚑ Object") == 5
    )  # (the factory made no v1 revision)
