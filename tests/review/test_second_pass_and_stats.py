from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from corpus.models import ItemStatus, Revision
from corpus.rules import InstructionType
from review import selectors
from review.models import SecondPass, SecondPassStatus
from review.services import second_pass, stats
from review.services.corrections import MarkInput, save_item
from review.services.queue import claim_next_image
from review.services.second_pass import SecondPassError, VerdictInput
from tests.corpus.factories import DomainFactory
from tests.review.conftest import make_pending_image

pytestmark = pytest.mark.django_db


def review_everything(image, user, *, reject_caption=False):
    """Decide every draft of the image through the service, as the page does."""
    claim_next_image(user, domain_ids=[image.domain_id])
    caption = image.captions.get()
    save_item(
        "caption",
        caption.pk,
        by=user,
        expected_version=caption.version,
        status=ItemStatus.REJECTED if reject_caption else ItemStatus.ACCEPTED,
        reason="wrong animal",
    )
    for item in image.instructions.all():
        save_item("instruction", item.pk, by=user, expected_version=item.version, status=ItemStatus.ACCEPTED)


def test_a_share_of_reviewed_images_goes_to_a_second_reviewer_who_is_not_the_first(
    settings, annotator, second_annotator, pending_image
):
    settings.REVIEW_SECOND_PASS_SHARE = 1.0
    review_everything(pending_image, annotator)
    second = SecondPass.objects.get(image=pending_image)
    assert second.first_reviewer == annotator and second.status == SecondPassStatus.PENDING
    assert second_pass.claim_second_pass(annotator) is None
    claimed = second_pass.claim_second_pass(second_annotator)
    assert claimed.pk == second.pk and claimed.reviewer == second_annotator


def test_no_second_pass_at_share_zero_and_the_share_is_roughly_kept():
    assert not any(second_pass.is_sampled(i, 0.0) for i in range(100))
    sampled = sum(second_pass.is_sampled(i, 0.1) for i in range(10_000))
    assert 850 < sampled < 1150


def test_verdicts_record_disagreements_and_the_agreement_rate(
    settings, client, admin_user, annotator, second_annotator, pending_image
):
    settings.REVIEW_SECOND_PASS_SHARE = 1.0
    review_everything(pending_image, annotator)
    second = second_pass.claim_second_pass(second_annotator)
    captions, instructions = selectors.items_to_check(second)
    verdicts = [VerdictInput("caption", captions[0].pk, agrees=False, note="it is a dog")] + [
        VerdictInput("instruction", i.pk, agrees=True) for i in instructions
    ]
    with pytest.raises(SecondPassError, match="Give a verdict"):
        second_pass.submit_verdicts(second.pk, by=second_annotator, verdicts=verdicts[1:])
    with pytest.raises(SecondPassError, match="not yours"):
        second_pass.submit_verdicts(second.pk, by=annotator, verdicts=verdicts)
    second_pass.submit_verdicts(second.pk, by=second_annotator, verdicts=verdicts)
    assert selectors.agreement() == {"verdicts": 3, "agreed": 2, "rate": pytest.approx(2 / 3)}
    with pytest.raises(SecondPassError):
        second_pass.submit_verdicts(second.pk, by=second_annotator, verdicts=verdicts)
    client.force_login(admin_user)
    html = client.get(reverse("review:disagreements")).content.decode()
    assert "it is a dog" in html and "66.7 %" in html
    # The first reviewer is shown where they were contradicted; the second reviewer is not.
    client.force_login(annotator)
    assert "it is a dog" in client.get(reverse("review:second_pass")).content.decode()
    client.force_login(second_annotator)
    assert "it is a dog" not in client.get(reverse("review:second_pass")).content.decode()


def test_second_pass_through_the_pages(settings, client, annotator, second_annotator, pending_image):
    settings.REVIEW_SECOND_PASS_SHARE = 1.0
    review_everything(pending_image, annotator)
    client.force_login(second_annotator)
    response = client.post(reverse("review:second_pass"))
    assert response.status_code == 302
    page = client.get(response.url)
    assert "Second look at image" in page.content.decode()
    caption = pending_image.captions.get()
    form = {f"verdict-instruction-{i.pk}": "agree" for i in pending_image.instructions.all()}
    form[f"verdict-caption-{caption.pk}"] = "disagree"
    assert client.post(response.url, form).status_code == 400  # a disagreement needs a reason
    form[f"note-caption-{caption.pk}"] = "the colours are wrong"
    assert client.post(response.url, form).status_code == 302
    assert SecondPass.objects.get().status == SecondPassStatus.DONE


def test_correction_rates_come_from_revisions(annotator):
    domain = DomainFactory(name="Charts")
    image = make_pending_image(domain, types=[InstructionType.SHORT_VQA] * 3)
    claim_next_image(annotator, domain_ids=[domain.pk])
    caption = image.captions.get()
    save_item(
        "caption", caption.pk, by=annotator, expected_version=1, status=ItemStatus.REJECTED, reason="no"
    )
    a, b, c = image.instructions.all()
    save_item("instruction", a.pk, by=annotator, expected_version=1, status=ItemStatus.ACCEPTED)
    # Fixed in two steps: an edit, then an accept — still counts as edited.
    save_item("instruction", b.pk, by=annotator, expected_version=1, changes={"answer": "blue"})
    save_item("instruction", b.pk, by=annotator, expected_version=2, status=ItemStatus.ACCEPTED)
    save_item(
        "instruction",
        c.pk,
        by=annotator,
        expected_version=1,
        changes={"answer": "red"},
        status=ItemStatus.ACCEPTED,
    )
    rates = stats.correction_rates()
    overall = rates["overall"][0]
    assert (overall["total"], overall["edited"], overall["rejected"], overall["as_is"]) == (4, 2, 1, 1)
    by_type = {r["key"]: r for r in rates["type"]}
    assert by_type["caption"]["rejected_share"] == 1.0
    assert by_type["short_vqa"]["edited_share"] == pytest.approx(2 / 3)
    assert [r["key"] for r in rates["domain"]] == ["Charts"]


def test_hallucination_counts_by_category_domain_type_and_model(annotator, pending_image):
    claim_next_image(annotator)
    caption = pending_image.captions.get()
    save_item(
        "caption",
        caption.pk,
        by=annotator,
        expected_version=1,
        marks=[MarkInput("object", "text", 0, 7), MarkInput("count")],
    )
    mcq = pending_image.instructions.get(type=InstructionType.MULTIPLE_CHOICE)
    save_item("instruction", mcq.pk, by=annotator, expected_version=1, marks=[MarkInput("object", "answer")])
    counts = stats.hallucination_counts()
    cats = [c for c, _ in counts["categories"]]
    assert counts["totals"][cats.index("object")] == 2 and counts["totals"][cats.index("count")] == 1
    by_type = {r["key"]: r for r in counts["by_type"]}
    assert by_type["caption"]["total"] == 2 and by_type["multiple_choice"]["total"] == 1
    assert {r["key"] for r in counts["by_model"]} == {"test-vision-model", "test-text-model"}
    assert counts["by_domain"][0]["key"] == pending_image.domain.name


def test_throughput_counts_active_time_between_decisions(annotator, pending_image):
    review_everything(pending_image, annotator)
    base = timezone.now() - timedelta(hours=1)
    decisions = Revision.objects.filter(by=annotator, action__in=["accepted", "rejected"]).order_by("id")
    # 0 s, +20 s, +40 s, then a 2-hour break that is not work.
    for rev, offset in zip(decisions, [0, 20, 40], strict=True):
        Revision.objects.filter(pk=rev.pk).update(at=base + timedelta(seconds=offset))
    [row] = stats.throughput()
    assert row["user"] == "ann-annotator" and row["decisions"] == 3
    assert row["active_seconds"] == pytest.approx(40, abs=0.01)
    assert row["seconds_per_item"] == pytest.approx(40 / 3, abs=0.01)
    assert row["items_per_hour"] == pytest.approx(3 * 3600 / 40, rel=1e-3)


def test_stats_page_in_few_queries(client, admin_user, annotator, settings, django_assert_max_num_queries):
    settings.REVIEW_SECOND_PASS_SHARE = 0
    for _ in range(3):
        image = make_pending_image(DomainFactory())
        review_everything(image, annotator, reject_caption=True)
    client.force_login(admin_user)
    # 19: the quality loop's figures (flags, the verifier report, auto-accept, the cost ledger) add a fixed
    # ten grouped queries (tests/quality/test_ledger.py holds them flat with more rows).
    with django_assert_max_num_queries(19):
        response = client.get(reverse("review:stats"))
    html = response.content.decode()
    assert response.status_code == 200 and "ann-annotator" in html and "Correction rate" in html


def test_disagreement_lists_in_few_queries(
    settings, client, admin_user, annotator, second_annotator, django_assert_max_num_queries
):
    settings.REVIEW_SECOND_PASS_SHARE = 1.0
    for _ in range(4):
        image = make_pending_image(DomainFactory())
        review_everything(image, annotator)
        second = second_pass.claim_second_pass(second_annotator)
        captions, instructions = selectors.items_to_check(second)
        second_pass.submit_verdicts(
            second.pk,
            by=second_annotator,
            verdicts=[VerdictInput("caption", c.pk, agrees=False, note="wrong colour") for c in captions]
            + [VerdictInput("instruction", i.pk, agrees=False, note="wrong answer") for i in instructions],
        )
    client.force_login(admin_user)
    with django_assert_max_num_queries(8):
        html = client.get(reverse("review:disagreements")).content.decode()
    assert html.count('class="disagreement"') == 12
    client.force_login(annotator)
    with django_assert_max_num_queries(8):
        html = client.get(reverse("review:second_pass")).content.decode()
    assert html.count('class="disagreement"') == 12
