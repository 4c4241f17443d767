"""The cost of an accepted instruction adds up from the ledger, on known inputs: model calls (units of
every stage and a failed attempt), people's active time at their role's rate (breaks left out), the manual
baseline measured on an instruction written by hand, and the ratio."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from corpus.models import Instruction, ItemStatus, Origin, Revision, RevisionAction
from generation.models import Endpoint, GenerationJob, GenerationUnit, PromptTemplate, UnitFailure
from review.services import ledger
from tests.corpus.factories import DomainFactory, ImageFactory, InstructionFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=datetime.now().astimezone().tzinfo).astimezone()


@pytest.fixture
def known(annotator, settings):
    settings.COST_HOURLY_RATE_ANNOTATOR = 36  # 0.01 a second
    settings.REVIEW_IDLE_SECONDS = 300
    settings.COST_MANUAL_SECONDS = 0
    domain = DomainFactory(slug="ledger", name="Ledger")
    image = ImageFactory(domain=domain)
    endpoint = Endpoint.objects.create(name="e1", kind="text", base_url="http://127.0.0.1:9/v1", model="m")
    prompt = PromptTemplate.objects.create(kind="caption", version=77, text="x", is_current=False)
    job = GenerationJob.objects.create(stage="instructions", endpoint=endpoint)
    for stage, type_, cost in (
        ("instructions", "short_vqa", "0.30"),
        ("captions", "", "0.10"),
        ("verify", "", "0.05"),
    ):
        GenerationUnit.objects.create(
            job=job, image=image, stage=stage, instruction_type=type_, prompt=prompt, endpoint=endpoint,
            status="done", cost=Decimal(cost), finished_at=T0,
        )  # fmt: skip
    unit = GenerationUnit.objects.filter(stage="instructions").get()
    UnitFailure.objects.create(
        job=job, unit=unit, image=image, instruction_type="short_vqa", error="x", cost=Decimal("0.02"), at=T0
    )
    items = [
        InstructionFactory(image=image, status=ItemStatus.ACCEPTED, model_name="e1/m", reviewed_at=T0)
        for _ in range(4)
    ]
    # Decisions 60 s apart, then a break (880 s: not work), then 100 s writing one by hand.
    for n, (item, offset) in enumerate(zip(items, (0, 60, 120, 1000), strict=True)):
        Revision.objects.create(instruction=item, version=2 + n, action=RevisionAction.ACCEPTED, by=annotator,
                                at=T0 + timedelta(seconds=offset), after={})  # fmt: skip
    hand = InstructionFactory(
        image=image, status=ItemStatus.ACCEPTED, origin=Origin.PERSON, model_name="", reviewed_at=T0
    )
    Revision.objects.create(
        instruction=hand,
        version=1,
        action=RevisionAction.CREATED,
        by=annotator,
        at=T0 + timedelta(seconds=1100),
        after={},
    )
    Revision.objects.create(
        instruction=hand,
        version=2,
        action=RevisionAction.ACCEPTED,
        by=annotator,
        at=T0 + timedelta(seconds=1100),
        after={},
    )
    return domain


def test_the_cost_per_accepted_instruction_adds_up_from_the_ledger(known):
    out = ledger.ledger()
    overall = out["overall"]
    assert overall["model_cost"] == Decimal("0.4700")  # 0.30 + 0.10 + 0.05 + a failed 0.02
    assert overall["people_seconds"] == 220.0  # 60 + 60 (+ 880 is a break) + 100 writing by hand
    assert overall["people_cost"] == Decimal("2.2000")
    assert overall["total"] == Decimal("2.6700") and overall["accepted"] == 5
    assert overall["per_accepted"] == Decimal("0.5340")
    assert out["manual"]["seconds_per_instruction"] == 100.0
    assert out["manual"]["per_instruction"] == Decimal("1.0000")
    assert out["ratio"] == pytest.approx(0.534)
    by_type = {row["key"]: row for row in out["by_type"]}
    assert by_type["short_vqa"]["model_cost"] == Decimal("0.3200")
    assert by_type[ledger.SHARED]["model_cost"] == Decimal("0.1500")
    assert sum(row["total"] for row in out["by_domain"]) == overall["total"]
    assert sum(row["total"] for row in out["by_week"]) == overall["total"]
    assert ledger.cost_per_accepted_by_domain() == {"ledger": Decimal("0.5340")}


def test_a_configured_manual_figure_replaces_the_measured_one(known, settings):
    settings.COST_MANUAL_SECONDS = 300
    out = ledger.ledger()
    assert out["manual"]["per_instruction"] == Decimal("3.0000") and "configured" in out["manual"]["source"]
    assert out["ratio"] == pytest.approx(0.534 / 3)


def test_the_statistics_page_and_the_api_show_the_headline_with_its_inputs(known, client, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("review:stats")).content.decode()
    assert 'id="cost-per-accepted">0.5340 USD' in page and 'id="cost-ratio">0.534' in page
    assert "model calls 0.4700 + people's active time 220 s = 2.2000" in page
    data = client.get("/api/v1/review/quality/report/").json()
    assert float(data["cost"]["overall"]["per_accepted"]) == 0.534 and data["cost"]["ratio"] == pytest.approx(
        0.534
    )
    assert Instruction.objects.count() == 5


def test_the_quality_figures_take_a_fixed_number_of_queries_however_many_rows(
    known, annotator, django_assert_num_queries
):
    from review.services import quality_stats

    with django_assert_num_queries(10):
        quality_stats.statistics()
    for n in range(5):
        item = InstructionFactory(status=ItemStatus.ACCEPTED, reviewed_at=T0)
        Revision.objects.create(instruction=item, version=5, action=RevisionAction.ACCEPTED, by=annotator,
                                at=T0 + timedelta(seconds=2000 + n), after={})  # fmt: skip
    with django_assert_num_queries(10):
        quality_stats.statistics()
