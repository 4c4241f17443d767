"""The verify stage: a vision model judges each draft instruction of an image; verdicts are stored per
item with endpoint, model, prompt version, tokens and cost; units are idempotent; faults retry or fail
like the other stages. Runs the real runner and openai client against the fake server (eager Celery)."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from corpus.models import HALLUCINATION_CATEGORIES, Instruction, Verdict
from corpus.rules import InstructionType as T
from generation import services
from generation.models import Endpoint, GenerationJob, JobStatus, UnitStatus
from generation.services import drafting, verify
from generation.services import jobs as job_service
from generation.services import units as unit_service
from review.models import HallucinationCategory
from review.services.queue import take_image
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory
from tests.fakes.openai_server import fake_verdict

pytestmark = pytest.mark.django_db(transaction=True)


def test_corpus_knows_the_same_six_hallucination_categories_as_review():
    assert HALLUCINATION_CATEGORIES == list(HallucinationCategory.choices)


@pytest.fixture
def drafts():
    """Two images of a domain, each with a caption and three draft instructions; one without drafts."""
    domain = DomainFactory(slug="verify-me")
    items = []
    for _ in range(2):
        image = ImageFactory(domain=domain, review_status="pending")
        caption = CaptionFactory(image=image)
        items += [
            InstructionFactory(image=image, caption=caption, type=T.SHORT_VQA),
            InstructionFactory(
                image=image, caption=caption, type=T.JUDGEMENT, answer="Yes", question="Is it red?"
            ),
            InstructionFactory(image=image, caption=caption, type=T.MULTIPLE_CHOICE, answer="B"),
        ]
    ImageFactory(domain=domain)  # nothing to verify: no unit
    return items


def launch(admin, **kw):
    return services.launch_job(stage="verify", by=admin, domains=["verify-me"], **kw)


def test_a_verify_job_stores_one_verdict_per_draft_with_its_provenance_and_cost(
    eager, endpoints, fake, drafts, admin_user
):
    fake.unsupported_share = 0.5
    job = launch(admin_user)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert job.units.count() == 2  # one per image with drafts
    assert {r.kind for r in fake.requests} == {"verify"}
    assert {r.schema_name for r in fake.requests} == {"verdicts"}
    assert all(r.image_url.startswith("data:image/") for r in fake.requests)
    verdicts = {v.instruction_id: v for v in Verdict.objects.all()}
    assert set(verdicts) == {i.pk for i in drafts}
    for item in drafts:
        v = verdicts[item.pk]
        assert v.verdict == fake_verdict(item.pk, 0.5)
        assert v.category == ("object" if v.verdict == "unsupported" else "")
        assert v.reason and v.item_version == item.version
        assert v.endpoint_name == endpoints["vision"].name
        assert v.model_name == f"{endpoints['vision'].name}/{endpoints['vision'].model}"
        assert v.prompt_version == 1
    for unit in job.units.all():
        mine = Verdict.objects.filter(generation_unit_id=unit.pk)
        assert sum(v.cost for v in mine) == unit.cost > 0  # the call's cost, split without losing a cent
        assert sum(v.tokens_in for v in mine) == unit.tokens_in == fake.usage[0]
        assert sum(v.tokens_out for v in mine) == unit.tokens_out == fake.usage[1]
        assert unit.drafts == 3


def test_a_second_verify_job_asks_nothing_again(eager, endpoints, fake, drafts, admin_user):
    launch(admin_user)
    calls, stored = len(fake.requests), Verdict.objects.count()
    again = launch(admin_user)
    again.refresh_from_db()
    assert again.skipped == 2 and again.units.count() == 0
    assert (len(fake.requests), Verdict.objects.count()) == (calls, stored)


def test_a_redelivered_result_writes_no_second_verdict(drafts, admin_user, endpoints):
    job = launch(admin_user, start=False)
    job_service.move_job(job, JobStatus.RUNNING)
    job_service.plan_units(job)
    unit = job.units.order_by("pk").first()
    claim = unit_service.claim_unit(unit.pk, lease=60)
    request = verify.prepare(claim.unit, {})
    answer = (
        '{"verdicts": ['
        + ",".join(
            f'{{"id": {i}, "verdict": "SUPPORTED", "reason": "ok", "category": "count"}}'
            for i in request.extra["versions"]
        )
        + "]}"
    )
    verdicts = verify.parse_verdicts(answer, request)
    assert {v["category"] for v in verdicts} == {""}  # a category only for unsupported items
    usage = drafting.Usage(tokens_in=100, tokens_out=10, cost=Decimal("0.000010"), attempts=1)
    assert drafting.write_result(
        claim.unit, claim.token, request, text=answer, items=verdicts, model_name="m", usage=usage
    )
    assert not drafting.write_result(
        claim.unit, claim.token, request, text=answer, items=verdicts, model_name="m", usage=usage
    )
    assert Verdict.objects.count() == 3
    assert sum(Verdict.objects.values_list("cost", flat=True)) == Decimal("0.000010")


def test_a_verdict_answer_missing_an_item_is_malformed_and_unknown_categories_read_as_other(
    drafts, admin_user, endpoints
):
    job = launch(admin_user, start=False)
    job_service.move_job(job, JobStatus.RUNNING)
    job_service.plan_units(job)
    unit = job.units.order_by("pk").first()
    request = verify.prepare(unit_service.claim_unit(unit.pk, lease=60).unit, {})
    ids = sorted(request.extra["versions"])
    with pytest.raises(drafting.MalformedOutput, match="no verdict for 1 of 3"):
        verify.parse_verdicts(
            '{"verdicts": [' + ",".join(f'{{"id": {i}, "verdict": "supported"}}' for i in ids[:2]) + "]}",
            request,
        )
    with pytest.raises(drafting.MalformedOutput):
        verify.parse_verdicts("I cannot see the image.", request)
    text = (
        '```json\n{"verdicts": ['
        + ",".join(
            f'{{"id": {i}, "verdict": "unsupported", "reason": "no", "category": "ghost"}}' for i in ids
        )
        + "]}\n```"
    )
    assert {v["category"] for v in verify.parse_verdicts(text, request)} == {"other"}


def test_verify_faults_retry_what_is_transient_and_fail_what_is_not(
    eager, endpoints, fake, drafts, admin_user
):
    # First unit: a 500, then an answer missing an item, then a good one. Second unit: a 400 (permanent).
    Endpoint.objects.filter(pk=endpoints["vision"].pk).update(max_concurrency=1)  # units in turn
    fake.script(["500", "too_few", "ok", "400"])
    job = launch(admin_user)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    units = list(job.units.order_by("pk"))
    done = [u for u in units if u.status == UnitStatus.DONE]
    failed = [u for u in units if u.status == UnitStatus.FAILED]
    assert len(done) == len(failed) == 1
    assert done[0].attempts == 3 and "HTTP 400" in failed[0].error
    assert Verdict.objects.count() == 3
    assert not Verdict.objects.filter(instruction__image_id=failed[0].image_id).exists()


def test_generate_verify_command_and_api_launch_the_stage(eager, endpoints, fake, drafts, admin_user):
    call_command("generate", "verify", "--domain", "verify-me", "--wait", "--poll", "0.1")
    assert Verdict.objects.count() == 6
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post(
        "/api/v1/generation/jobs/", {"stage": "verify", "domains": ["verify-me"]}, format="json"
    )
    assert response.status_code == 202 and response.json()["stage"] == "verify"
    assert GenerationJob.objects.filter(stage="verify").count() == 2


def test_verdicts_and_reasons_show_beside_their_item_on_the_review_page(
    eager, endpoints, fake, drafts, admin_user, annotator, client
):
    fake.unsupported_share = 1.0
    launch(admin_user)
    item = drafts[0]
    take_image(item.image_id, annotator)
    client.force_login(annotator)
    page = client.get(reverse("review:image", args=[item.image_id])).content.decode()
    start = page.index(f'id="item-instruction-{item.pk}"')
    block = page[start : page.index("</article>", start)]
    assert "verdict-unsupported" in block and "the image shows no such thing (fake)" in block
    assert "(Object)" in block
    assert Instruction.objects.get(pk=item.pk).status == "draft"  # a verdict decides nothing by itself


def test_a_verify_job_with_no_drafts_to_judge_says_so(eager, endpoints, fake, admin_user):
    ImageFactory(domain=DomainFactory(slug="nothing-drafted"))
    job = services.launch_job(stage="verify", by=admin_user, domains=["nothing-drafted"])
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and not fake.requests
    assert (
        job.plan_note
        == "0 units planned: no image in domain(s) nothing-drafted has draft instructions to verify"
    )
