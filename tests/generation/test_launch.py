"""Launching: the confirmation a broken endpoint asks for (page, API, CLI), bounded input with clear
errors, why a job planned 0 units, failure history that survives adoption, exactly n per type, and unit
errors that name the endpoint."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from corpus.models import Instruction, ItemStatus, SeedQuestion
from generation import selectors, services
from generation.models import Endpoint, GenerationJob, GenerationUnit, JobStatus, UnitStatus
from tests.conftest import field_errors
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory
from tests.fakes.openai_server import FakeOpenAI

JOBS = "/api/v1/generation/jobs/"


@pytest.fixture
def domain(db):
    return DomainFactory(slug="charts", name="Charts")


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def launch_form(**fields):
    return {"stage": "captions", "domains": ["charts"], "n_per_type": 3, "seeds_per_prompt": 2, **fields}


# --- confirmation before launching on a broken endpoint ---------------------------------------------


@pytest.mark.django_db
def test_api_refuses_a_launch_on_an_endpoint_without_its_key_unless_forced(api, domain, monkeypatch):
    ImageFactory(domain=domain)
    monkeypatch.delenv("OPENAI_API_KEY")
    response = api.post(JOBS, {"stage": "captions", "domains": ["charts"]}, format="json")
    assert response.status_code == 409
    assert "OPENAI_API_KEY" in response.json()["detail"] and "force=true" in response.json()["detail"]
    assert not GenerationJob.objects.exists()
    forced = api.post(JOBS, {"stage": "captions", "domains": ["charts"], "force": True}, format="json")
    assert forced.status_code == 202
    job = GenerationJob.objects.get()
    assert "launched despite: the key variable OPENAI_API_KEY" in job.events.get().note


@pytest.mark.django_db
def test_api_refuses_a_launch_on_an_endpoint_whose_last_test_failed(api, domain, endpoints, fake):
    fake.script(["404"])
    api.post(f"/api/v1/generation/endpoints/{endpoints['vision'].pk}/test_connection/")
    response = api.post(JOBS, {"stage": "captions", "domains": ["charts"]}, format="json")
    assert response.status_code == 409 and "last connection test" in response.json()["detail"]
    assert "HTTP 404" in response.json()["detail"]
    api.post(f"/api/v1/generation/endpoints/{endpoints['vision'].pk}/test_connection/")  # passes now
    assert api.post(JOBS, {"stage": "captions", "domains": ["charts"]}, format="json").status_code == 202


@pytest.mark.django_db
def test_page_asks_for_confirmation_and_launch_anyway_launches(client, admin_user, domain, monkeypatch):
    ImageFactory(domain=domain)
    monkeypatch.delenv("OPENAI_API_KEY")
    client.force_login(admin_user)
    response = client.post(reverse("generation:jobs"), launch_form(limit=1))
    assert response.status_code == 409 and not GenerationJob.objects.exists()
    page = response.content.decode()
    assert "Launch anyway" in page and "OPENAI_API_KEY" in page and "not launched" in page
    # The confirmation form carries the same choices back, with force set.
    assert 'name="limit" value="1"' in page and 'name="force" value="on"' in page
    confirmed = client.post(reverse("generation:jobs"), launch_form(limit=1, force="on"))
    job = GenerationJob.objects.get()
    assert confirmed.status_code == 302 and job.selection["limit"] == 1


@pytest.mark.django_db
def test_cli_refuses_a_launch_on_an_endpoint_without_its_key_unless_forced(domain, monkeypatch, capsys):
    ImageFactory(domain=domain)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(CommandError, match="OPENAI_API_KEY.*--force"):
        call_command("generate", "captions", "--domain", "charts")
    assert not GenerationJob.objects.exists()
    call_command("generate", "captions", "--domain", "charts", "--force")
    assert GenerationJob.objects.count() == 1


# --- bounded input, clear errors --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [("limit", 2**64), ("limit", 2**31), ("limit", 0), ("n_per_type", 2**70), ("seeds_per_prompt", -1),
     ("limit", "1e400"), ("domains", ["ch\x00arts"]), ("endpoint", "default\x00"), ("endpoint", "a\x1bb"),
     ("statuses", ["pending\x00"]), ("types", ["judgement\x07"]), ("stage", "captions\x00"),
     ("image_ids", []), ("image_ids", [0]), ("image_ids", [2**64]), ("image_ids", ["x"]),
     ("image_ids", [999_999_999]), ("image_ids", list(range(1, 10_002)))],
)  # fmt: skip
def test_bad_launch_input_is_a_400_naming_the_field(api, domain, field, value):
    response = api.post(JOBS, {"stage": "captions", "domains": ["charts"], field: value}, format="json")
    assert response.status_code == 400
    assert field in field_errors(response)
    assert not GenerationJob.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "words"),
    [({"limit": str(2**64)}, "Limit"), ({"domains": ["ch\x00arts"]}, "Domains"),
     ({"endpoint": "x\x00"}, "Endpoint"), ({"n_per_type": "0"}, "Questions per type")],
)  # fmt: skip
def test_launch_page_shows_bad_input_as_messages(client, admin_user, domain, fields, words):
    client.force_login(admin_user)
    response = client.post(reverse("generation:jobs"), launch_form(**fields))
    assert response.status_code == 400
    messages = [str(m) for m in response.context["messages"]]
    assert any(m.startswith(f"Not launched. {words}:") for m in messages), messages
    assert not GenerationJob.objects.exists()


@pytest.mark.django_db
def test_cli_refuses_a_limit_beyond_the_database_range(domain):
    with pytest.raises(CommandError, match="limit: limit must be between 1 and"):
        call_command("generate", "captions", "--domain", "charts", "--limit", str(2**64))
    assert not GenerationJob.objects.exists()


@pytest.mark.django_db
def test_prompt_page_refuses_control_characters(client, admin_user):
    services.ensure_default_prompts()
    client.force_login(admin_user)
    response = client.post(
        reverse("generation:prompt-new"), {"kind": "caption", "text": "Describe\x00 {{ domain }}"}
    )
    assert response.status_code == 400
    assert any("control characters" in str(m) for m in response.context["messages"])
    response = client.post(
        reverse("generation:prompt-new"), {"kind": "caption", "domain": "x\x00", "text": "ok"}
    )
    assert response.status_code == 400
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post(
        "/api/v1/generation/prompts/", {"kind": "caption", "text": "Describe\x01 {{ domain }}"}, format="json"
    )
    assert response.status_code == 400 and "text" in field_errors(response)


@pytest.mark.django_db(transaction=True)
def test_the_api_launches_a_job_on_chosen_images_only(eager, endpoints, fake, domain, api):
    chosen = ImageFactory.create_batch(2, domain=domain)
    ImageFactory.create_batch(3, domain=domain)  # same domain, not chosen
    elsewhere = ImageFactory(domain=DomainFactory(slug="maps"))
    ids = [chosen[1].pk, chosen[0].pk, chosen[1].pk]
    response = api.post(JOBS, {"stage": "captions", "domains": ["charts"], "image_ids": ids}, format="json")
    assert response.status_code == 202, response.json()
    job = GenerationJob.objects.get(pk=response.json()["id"])
    assert response.json()["selection"]["image_ids"] == sorted({i.pk for i in chosen})
    assert job.status == JobStatus.DONE
    assert set(job.units.values_list("image_id", flat=True)) == {i.pk for i in chosen}
    # An image outside the chosen domains is refused, naming the field; nothing is launched.
    refused = api.post(
        JOBS, {"stage": "captions", "domains": ["charts"], "image_ids": [elsewhere.pk]}, format="json"
    )
    assert refused.status_code == 400 and "image_ids" in field_errors(refused)
    assert GenerationJob.objects.count() == 1


# --- why a job planned 0 units ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_instruction_job_over_draft_captions_says_include_drafts(eager, endpoints, domain, api):
    for image in ImageFactory.create_batch(12, domain=domain):
        CaptionFactory(image=image, status=ItemStatus.DRAFT)
    ImageFactory.create_batch(2, domain=domain)  # no caption at all
    response = api.post(JOBS, {"stage": "instructions", "domains": ["charts"]}, format="json")
    job = GenerationJob.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.DONE
    note = "0 units planned: 12 images have only draft captions: include drafts?"
    assert job.plan_note.startswith(note)
    assert "2 images have no caption yet" in job.plan_note
    assert api.get(f"{JOBS}{job.pk}/").json()["plan_note"] == job.plan_note
    assert job.events.last().note == job.plan_note  # the history says why it ended


@pytest.mark.django_db(transaction=True)
def test_zero_unit_reasons_for_an_empty_selection_and_for_work_already_done(
    eager, endpoints, fake, domain, admin_user, client
):
    job = services.launch_job(stage="captions", by=admin_user, domains=["charts"], statuses=["reviewed"])
    job.refresh_from_db()
    assert job.plan_note == "0 units planned: no image in domain(s) charts with review status reviewed"
    ImageFactory.create_batch(2, domain=domain)
    services.launch_job(stage="captions", by=admin_user, domains=["charts"])
    again = services.launch_job(stage="captions", by=admin_user, domains=["charts"])
    again.refresh_from_db()
    assert (
        again.plan_note == "0 units planned: all 2 units were already done (or are running) in earlier jobs"
    )
    client.force_login(admin_user)
    assert again.plan_note in client.get(reverse("generation:job", args=[again.pk])).content.decode()


# --- failure history --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_keeps_its_failures_when_a_later_job_adopts_and_finishes_its_units(
    eager, endpoints, fake, domain, admin_user, settings, client
):
    settings.GENERATION_MAX_ATTEMPTS = 1
    ImageFactory.create_batch(3, domain=domain)
    fake.script(["500", "ok", "500"])
    first = services.launch_job(stage="captions", by=admin_user, domains=["charts"])
    before = selectors.progress(first)
    assert (before.done, before.failed, before.total) == (1, 2, 3)
    second = services.launch_job(stage="captions", by=admin_user, domains=["charts"])
    second.refresh_from_db()
    assert second.status == JobStatus.DONE and selectors.progress(second).done == 2
    after = selectors.progress(first)
    assert (after.done, after.failed, after.total, after.handed_on) == (1, 2, 3, 2)
    assert after.tokens_in == before.tokens_in  # the first job's spend stays its own
    errors = list(selectors.latest_errors(first))
    assert len(errors) == 2 and all("HTTP 500 from" in f.error for f in errors)
    client.force_login(admin_user)
    partial = client.get(reverse("generation:job-progress", args=[first.pk])).content.decode()
    assert partial.count("HTTP 500 from") == 2 and "taken up by a later job" in partial
    api = APIClient()
    api.force_authenticate(admin_user)
    listed = {j["id"]: j for j in api.get(JOBS).json()["results"]}
    assert (listed[first.pk]["failed"], listed[first.pk]["total"]) == (2, 3)
    assert (listed[second.pk]["failed"], listed[second.pk]["done"]) == (0, 2)


# --- n per type -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_model_that_returns_more_than_asked_still_stores_exactly_n(
    eager, endpoints, fake, domain, admin_user
):
    """The model copies the seed examples back and then writes twice the N asked: exactly N are kept,
    none of them a copy of a seed."""
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    for i in range(2):
        SeedQuestion.objects.create(
            domain=domain, type="judgement", question=f"Is seed {i} visible?", answer="Yes"
        )
    fake.script(["too_many"])
    job = services.launch_job(
        stage="instructions", by=admin_user, domains=["charts"], types=["judgement"], n_per_type=2
    )
    stored = list(Instruction.objects.filter(image=image).values_list("question", flat=True))
    assert len(stored) == 2 and not any("seed" in q for q in stored)
    assert GenerationUnit.objects.get(job=job).drafts == 2


@pytest.mark.django_db(transaction=True)
def test_a_model_that_returns_fewer_than_asked_is_retried(eager, endpoints, fake, domain, admin_user):
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    fake.script(["too_few", "ok"])
    job = services.launch_job(
        stage="instructions", by=admin_user, domains=["charts"], types=["short_vqa"], n_per_type=3
    )
    unit = GenerationUnit.objects.get(job=job)
    assert (unit.status, unit.attempts, unit.drafts) == (UnitStatus.DONE, 2, 3)
    assert Instruction.objects.filter(image=image).count() == 3


# --- unit errors name the endpoint ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_unit_error_names_url_model_status_and_the_missing_key(
    eager, endpoints, domain, admin_user, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeOpenAI(api_key="the-real-key") as strict:
        url = strict.base_url
        Endpoint.objects.filter(kind="vision").update(base_url=url, model="gpt-vision-x")
        ImageFactory(domain=domain)
        job = services.launch_job(stage="captions", by=admin_user, domains=["charts"], force=True)
    error = GenerationUnit.objects.get(job=job).error
    assert f"HTTP 401 from {url} (model gpt-vision-x)" in error
    assert "OPENAI_API_KEY is not set" in error
