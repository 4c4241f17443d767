"""Pages, API and the `generate` command: admins only, launch and control, query counts, escaping."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from corpus.models import Instruction, ItemStatus
from generation import services
from generation.models import Endpoint, GenerationJob, JobStatus, PromptTemplate
from generation.services import jobs as job_service
from generation.services import units as unit_service
from tests.conftest import field_errors
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory

PAGES = [
    ("generation:jobs", {}),
    ("generation:endpoints", {}),
    ("generation:prompts", {}),
    ("generation:prompt-new", {}),
    ("generation:costs", {}),
]


@pytest.fixture
def domain(db):
    return DomainFactory(slug="charts", name="Charts")


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def make_job(admin, domain, n_images=2, **kw):
    ImageFactory.create_batch(n_images, domain=domain)
    job = services.launch_job(stage="captions", by=admin, domains=[domain.slug], **kw)
    job_service.move_job(job, JobStatus.RUNNING)
    job_service.plan_units(job)
    return job


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_pages_are_for_admins_only(client, annotator, researcher, outsider, admin_user, name, kwargs):
    url = reverse(name, kwargs=kwargs)
    assert client.get(url).status_code == 302  # anonymous → login
    for person in (annotator, researcher, outsider):
        client.force_login(person)
        assert client.get(url).status_code == 403
    client.force_login(admin_user)
    assert client.get(url).status_code == 200


@pytest.mark.django_db
def test_annotator_cannot_launch_or_control_jobs(client, annotator, admin_user, domain):
    job = make_job(admin_user, domain)
    client.force_login(annotator)
    response = client.post(
        reverse("generation:jobs"),
        {"stage": "captions", "domains": ["charts"], "n_per_type": 3, "seeds_per_prompt": 2},
    )
    assert response.status_code == 403
    assert client.post(reverse("generation:job-control", args=[job.pk, "cancel"])).status_code == 403
    assert GenerationJob.objects.count() == 1
    api = APIClient()
    api.force_authenticate(annotator)
    assert (
        api.post(
            "/api/v1/generation/jobs/", {"stage": "captions", "domains": ["charts"]}, format="json"
        ).status_code
        == 403
    )
    assert api.post(f"/api/v1/generation/jobs/{job.pk}/cancel/").status_code == 403
    assert api.get("/api/v1/generation/endpoints/").status_code == 403
    assert APIClient().get("/api/v1/generation/jobs/").status_code in (401, 403)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


@pytest.mark.django_db
def test_admin_launches_from_the_page(client, admin_user, domain, django_capture_on_commit_callbacks):
    ImageFactory.create_batch(2, domain=domain)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("generation:jobs"),
            {"stage": "captions", "domains": ["charts"], "limit": 1, "n_per_type": 3, "seeds_per_prompt": 2},
        )
    job = GenerationJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("generation:job", args=[job.pk])
    assert job.selection["limit"] == 1 and job.launched_by == admin_user
    assert len(callbacks) == 1  # the start task is queued after commit
    detail = client.get(response.url)
    assert b"job-progress" in detail.content


@pytest.mark.django_db
def test_launch_with_an_unknown_endpoint_is_a_clear_error(api, domain):
    response = api.post(
        "/api/v1/generation/jobs/",
        {"stage": "captions", "domains": ["charts"], "endpoint": "nope"},
        format="json",
    )
    assert response.status_code == 400
    assert "no endpoint named 'nope'" in field_errors(response)["endpoint"][0]
    response = api.post(
        "/api/v1/generation/jobs/", {"stage": "captions", "domains": ["nowhere"]}, format="json"
    )
    assert response.status_code == 400 and "unknown domain" in field_errors(response)["domains"][0]
    text = Endpoint.objects.get(name="default-text")
    response = api.post(
        "/api/v1/generation/jobs/",
        {"stage": "captions", "domains": ["charts"], "endpoint": text.name},
        format="json",
    )
    assert response.status_code == 400 and "needs vision" in field_errors(response)["endpoint"][0]


@pytest.mark.django_db
def test_api_launch_is_accepted_and_controls_answer_409_when_not_allowed(api, domain):
    ImageFactory(domain=domain)
    response = api.post(
        "/api/v1/generation/jobs/", {"stage": "captions", "domains": ["charts"]}, format="json"
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    assert api.post(f"/api/v1/generation/jobs/{job_id}/resume/").status_code == 409
    assert api.post(f"/api/v1/generation/jobs/{job_id}/cancel/").status_code == 202
    assert api.post(f"/api/v1/generation/jobs/{job_id}/cancel/").status_code == 409
    assert GenerationJob.objects.get(pk=job_id).status == JobStatus.CANCELLED


@pytest.mark.django_db
def test_job_list_endpoint_and_page_use_a_fixed_number_of_queries(
    api, client, admin_user, domain, django_assert_max_num_queries
):
    for _ in range(4):
        make_job(admin_user, domain)
    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/generation/jobs/")
    body = response.json()
    assert body["count"] == 4
    assert {j["total"] for j in body["results"]} >= {2}
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("generation:jobs")).status_code == 200
    with django_assert_max_num_queries(14):
        assert client.get(reverse("generation:costs")).status_code == 200
    with django_assert_max_num_queries(8):
        assert client.get(reverse("generation:prompts")).status_code == 200
    with django_assert_max_num_queries(6):
        assert api.get("/api/v1/generation/prompts/").status_code == 200


@pytest.mark.django_db
def test_job_page_shows_invalid_items_and_errors_escaped(client, admin_user, domain):
    job = make_job(admin_user, domain, n_images=1)
    unit = job.units.get()
    claim = unit_service.claim_unit(unit.pk, lease=60)
    assert unit_service.fail_unit(
        claim.unit, claim.token, error="<script>alert(1)</script> HTTP 500 from the model server", attempts=1,
        tokens_in=0, tokens_out=0, cost=0,
    )  # fmt: skip
    image = unit.image
    caption = CaptionFactory(image=image)
    from corpus.services.items import create_instruction

    create_instruction(
        image, type="multiple_choice", question="<b>Which?</b>", options=["a", "b"], answer="E",
        caption=caption, generation_unit_id=unit.pk,
    )  # fmt: skip
    assert Instruction.objects.get().status == ItemStatus.INVALID
    client.force_login(admin_user)
    page = client.get(reverse("generation:job", args=[job.pk])).content.decode()
    assert "&lt;b&gt;Which?&lt;/b&gt;" in page and "<b>Which?" not in page
    assert "must be the letter of one of the options" in page
    partial = client.get(reverse("generation:job-progress", args=[job.pk])).content.decode()
    assert "&lt;script&gt;" in partial and "<script>alert" not in partial


@pytest.mark.django_db
def test_progress_partial_polls_while_active_and_stops_after(client, admin_user, domain):
    job = make_job(admin_user, domain)
    client.force_login(admin_user)
    url = reverse("generation:job-progress", args=[job.pk])
    assert 'hx-trigger="every' in client.get(url).content.decode()
    job_service.cancel_job(job, by=admin_user)
    assert 'hx-trigger="every' not in client.get(url).content.decode()


@pytest.mark.django_db
def test_editing_a_prompt_makes_a_new_version_and_checks_placeholders(client, admin_user, domain):
    services.ensure_default_prompts()
    current = PromptTemplate.objects.get(kind="caption", domain__isnull=True, is_current=True)
    client.force_login(admin_user)
    url = reverse("generation:prompt-edit", args=[current.pk])
    bad = client.post(url, {"kind": "caption", "text": "Describe {{ domian }} please."})
    assert bad.status_code == 400
    assert "unknown placeholder {{ domian }}" in bad.content.decode()
    good = client.post(
        url, {"kind": "caption", "text": "Describe this {{ domain }} image in 150 words.", "note": "shorter"}
    )
    assert good.status_code == 302
    versions = list(
        PromptTemplate.objects.filter(kind="caption", domain__isnull=True).values_list(
            "version", "is_current"
        )
    )
    assert sorted(versions) == [(1, False), (2, True)]
    for_domain = client.post(
        reverse("generation:prompt-new"),
        {"kind": "caption", "domain": "charts", "text": "Chart: {{ ocr_text }}"},
    )
    assert for_domain.status_code == 302
    from generation.services.prompts import current_template

    assert current_template("caption", domain=domain).text == "Chart: {{ ocr_text }}"


@pytest.mark.django_db
def test_instruction_template_must_use_caption_and_n():
    with pytest.raises(services.TemplateError, match=r"must use \{\{ caption \}\}"):
        services.save_template(
            kind="instruction", instruction_type="short_vqa", text="Ask {{ n }} questions."
        )


@pytest.mark.django_db
def test_default_endpoints_come_from_settings_and_keys_never_show(api, settings, monkeypatch):
    settings.OPENAI_BASE_URL = "http://vllm.local:8000/v1"
    settings.OPENAI_VISION_MODEL = "qwen2-vl"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    services.ensure_default_endpoints()
    services.ensure_default_endpoints()
    vision = Endpoint.objects.get(kind="vision", is_default=True)
    assert (vision.base_url, vision.model, vision.api_key_env) == (
        "http://vllm.local:8000/v1",
        "qwen2-vl",
        "OPENAI_API_KEY",
    )
    assert Endpoint.objects.count() == 2
    body = api.get("/api/v1/generation/endpoints/").content.decode()
    assert "sk-very-secret" not in body and '"key_is_set":true' in body.replace(" ", "")


@pytest.mark.django_db(transaction=True)
def test_generate_command_waits_and_fails_when_the_job_fails(
    eager, endpoints, fake, admin_user, settings, capsys
):
    settings.GENERATION_MAX_ATTEMPTS = 1
    domain = DomainFactory(slug="plots")
    ImageFactory.create_batch(2, domain=domain)
    call_command("generate", "captions", "--domain", "plots", "--limit", "1", "--wait", "--poll", "0.1")
    assert "done: 1 done, 0 failed" in capsys.readouterr().out
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    fake.script(["400"])
    with pytest.raises(CommandError, match="ended failed"):
        call_command(
            "generate", "instructions", "--domain", "plots", "--type", "short_vqa", "--wait", "--poll", "0.1"
        )
    with pytest.raises(CommandError, match="unknown domain"):
        call_command("generate", "captions", "--domain", "nowhere")


@pytest.mark.django_db
def test_generate_wait_says_when_no_worker_started_the_job_and_stops_at_its_timeout(
    endpoints, admin_user, capsys, monkeypatch
):
    """No worker here (and the start message is never sent: the test's transaction never commits), so
    the job stays queued: --wait says so once, and --timeout ends the watch — not the job — with a
    clear error instead of waiting forever."""
    from generation.management.commands import generate

    monkeypatch.setattr(generate, "QUEUED_HINT_SECONDS", 0.1)
    ImageFactory.create_batch(2, domain=DomainFactory(slug="plots"))
    with pytest.raises(CommandError, match=r"still queued after \d+ s; it goes on without this command"):
        call_command(
            "generate", "captions", "--domain", "plots", "--wait", "--poll", "0.05", "--timeout", "0.4"
        )
    err = capsys.readouterr().err
    assert err.count("is still queued after") == 1 and "no worker has started it" in err
    job = GenerationJob.objects.get()
    assert job.status == JobStatus.QUEUED  # the watch ended, not the job
    with pytest.raises(CommandError, match="--timeout: give a number of seconds above 0"):
        call_command("generate", "captions", "--domain", "plots", "--wait", "--timeout", "0")
    with pytest.raises(CommandError, match="--timeout goes with --wait"):
        call_command("generate", "captions", "--domain", "plots", "--timeout", "5")
    assert GenerationJob.objects.count() == 1  # refused before anything was launched


@pytest.mark.django_db
def test_each_regeneration_takes_the_next_round_with_the_current_prompt(admin_user, domain):
    image = ImageFactory(domain=domain)
    first = services.queue_regeneration(image, stage="captions", by=admin_user)
    services.save_template(kind="caption", text="Describe the {{ domain }} image.", by=admin_user)
    second = services.queue_regeneration(image, stage="captions", by=admin_user)
    third = services.queue_regeneration(image, stage="captions", by=admin_user)
    units = [job.units.get() for job in (first, second, third)]
    assert [u.round for u in units] == [0, 0, 1]  # a new prompt version is a new key, starting at round 0
    assert units[0].prompt.version == 1 and units[1].prompt.version == units[2].prompt.version == 2
    assert all(job.planned and job.status == JobStatus.QUEUED for job in (first, second, third))
    assert first.params["regeneration"] is True


@pytest.mark.django_db
def test_api_template_errors_are_a_400_naming_the_field_at_fault(api):
    bad_placeholder = api.post(
        "/api/v1/generation/prompts/",
        {"kind": "caption", "domain": None, "text": "Describe {{ domian }}."},
        format="json",
    )
    assert bad_placeholder.status_code == 400
    assert "unknown placeholder {{ domian }}" in field_errors(bad_placeholder)["text"][0]
    no_type = api.post(
        "/api/v1/generation/prompts/",
        {"kind": "instruction", "domain": None, "text": "{{ caption }} {{ n }}"},
        format="json",
    )
    assert no_type.status_code == 400
    assert "instruction_type must be one of" in field_errors(no_type)["instruction_type"][0]
    assert not PromptTemplate.objects.filter(text__contains="domian").exists()


@pytest.mark.django_db
def test_api_launch_on_a_broken_endpoint_is_a_409_that_names_force(api, domain, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    response = api.post(
        "/api/v1/generation/jobs/", {"stage": "captions", "domains": ["charts"]}, format="json"
    )
    assert response.status_code == 409
    assert "force=true" in response.json()["detail"] and "force" in field_errors(response)
    assert not GenerationJob.objects.exists()
