"""Issue 12's acceptance, as one test: 10,000 instructions, the fake verifier marking 20% unsupported,
auto-accept on. The audited share is 10% ± 1%, nothing unsupported or flagged is auto-accepted, and the
precision/recall report matches a hand count of what people decided."""

import time

import pytest
from django.utils import timezone

from corpus.models import (
    Caption,
    Image,
    Instruction,
    ItemStatus,
    Origin,
    QualityFlag,
    ReviewStatus,
    Revision,
    Verdict,
)
from corpus.rules import InstructionType as T
from corpus.services import items as item_service
from corpus.services import quality
from generation import services
from generation.models import Endpoint, JobStatus
from review.services import auto_accept, verifier_report
from tests.corpus.factories import DomainFactory, ImageFactory
from tests.fakes.openai_server import fake_verdict

pytestmark = pytest.mark.django_db(transaction=True)

CAPTION = "A small test image with a colour gradient running from the top left corner to the bottom right."
IMAGES, PER_IMAGE = 1000, 10


def test_ten_thousand_instructions_with_a_verifier_marking_a_fifth_unsupported(
    eager, endpoints, fake, admin_user, annotator, settings
):
    started = time.monotonic()
    quality.clear_caches()
    fake.unsupported_share = 0.2
    Endpoint.objects.filter(pk=endpoints["vision"].pk).update(max_concurrency=16)
    domain = DomainFactory(slug="acceptance")
    images = ImageFactory.create_batch(IMAGES, domain=domain, review_status=ReviewStatus.PENDING)
    now = timezone.now()
    captions = Caption.objects.bulk_create(
        [
            Caption(image=i, text=CAPTION, status=ItemStatus.ACCEPTED, created_at=now, updated_at=now)
            for i in images
        ]
    )
    rows = []
    for n, (image, caption) in enumerate(zip(images, captions, strict=True)):
        for k in range(PER_IMAGE):
            serial = n * PER_IMAGE + k
            planted = serial % 25 == 0  # a number the caption never mentions: flagged
            rows.append(
                Instruction(
                    image=image, caption=caption, type=T.SHORT_VQA, origin=Origin.MODEL, model_name="writer",
                    question=f"What runs across stripe {serial} of it?", language="en",
                    answer="7 gradients" if planted else "a gradient", created_at=now, updated_at=now,
                )
            )  # fmt: skip
    Instruction.objects.bulk_create(rows, batch_size=2000)
    marks = {"setup": time.monotonic() - started}
    quality.recheck_quality()  # the checks, as every write through corpus.services runs them
    assert Instruction.objects.filter(image__domain=domain).count() == 10_000
    flagged = set(QualityFlag.objects.values_list("instruction_id", flat=True))
    assert len(flagged) == 400 and set(QualityFlag.objects.values_list("code", flat=True)) == {
        "not_in_caption"
    }

    marks["checks"] = time.monotonic() - started
    job = services.launch_job(stage="verify", by=admin_user, domains=["acceptance"])
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and Verdict.objects.count() == 10_000
    marks["verify"] = time.monotonic() - started
    verdict = dict(Verdict.objects.values_list("instruction_id", "verdict"))
    assert all(verdict[pk] == fake_verdict(pk, 0.2) for pk in verdict)
    unsupported = {pk for pk, v in verdict.items() if v == "unsupported"}
    assert 0.18 <= len(unsupported) / 10_000 <= 0.22

    # People decide the first 60 images by hand: they reject what is wrong — which the verifier mostly
    # caught — and now and then disagree with it. Their decisions are the hand count.
    settings.QUALITY_MIN_DECIDED = 200
    settings.QUALITY_MIN_RECALL = 0.7  # people disagree on 1 in 13: recall ≈ 75%
    hand = verifier_report.Confusion()
    for item in Instruction.objects.filter(image__in=images[:60]).order_by("id"):
        said_unsupported = item.pk in unsupported
        wrong = said_unsupported != (item.pk % 13 == 0)  # people disagree with the verifier on 1 in 13
        item_service.update_item(
            item, by=annotator, expected_version=item.version,
            status=ItemStatus.REJECTED if wrong else ItemStatus.ACCEPTED,
        )  # fmt: skip
        hand.add(said_unsupported, wrong)
    marks["people"] = time.monotonic() - started
    report = verifier_report.report(domain_ids=[domain.pk])["overall"]
    assert (report["tp"], report["fp"], report["fn"], report["tn"]) == (hand.tp, hand.fp, hand.fn, hand.tn)
    assert report["precision"] == hand.precision and report["recall"] == hand.recall
    assert report["decided"] == 600

    auto_accept.switch_on(domain, by=admin_user)
    counts = auto_accept.run_auto_accept(domain)

    marks["auto_accept"] = time.monotonic() - started
    auto = set(Revision.objects.filter(origin="auto").values_list("instruction_id", flat=True))
    undecided = set(Instruction.objects.filter(image__in=images[60:]).values_list("pk", flat=True))
    eligible = undecided - unsupported - flagged
    audited = {pk for pk in eligible if verifier_report.is_audited(pk, 0.1)}
    assert 0.09 <= len(audited) / len(eligible) <= 0.11  # the audited share: 10% ± 1%
    assert counts["audited"] == len(audited) and counts["skipped"] == 0
    assert auto == eligible - audited and counts["accepted"] == len(auto)
    assert not auto & unsupported and not auto & flagged  # nothing unsupported or flagged
    left = Instruction.objects.filter(pk__in=unsupported | flagged | audited, image__in=images[60:])
    assert set(left.values_list("status", flat=True)) == {ItemStatus.DRAFT}
    # Images whose every draft was auto-accepted are reviewed; the others still wait for people.
    waiting = set(Instruction.objects.filter(status=ItemStatus.DRAFT).values_list("image_id", flat=True))
    assert set(Image.objects.filter(pk__in=waiting).values_list("review_status", flat=True)) == {
        ReviewStatus.PENDING
    }
    print(f"\nacceptance scenario: {time.monotonic() - started:.1f} s, {counts}, at {marks}")
