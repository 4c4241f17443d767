"""A job's page explains itself: its parameters in words, only the controls its status allows, a bar
coloured by status (failed is red), links to the drafts it wrote and to its failures."""

import re

import pytest
from django.utils import timezone

from generation import services as generation
from generation.models import GenerationUnit, JobStatus, PromptTemplate, UnitFailure, UnitStatus
from generation.services.jobs import move_job
from tests.corpus.factories import DomainFactory, ImageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(admin_user):
    domain = DomainFactory(slug="owls", name="Owls")
    images = ImageFactory.create_batch(2, domain=domain)
    generation.ensure_default_endpoints()
    generation.ensure_default_prompts()
    job = generation.launch_job(
        stage="instructions",
        by=admin_user,
        domains=["owls"],
        statuses=["new"],
        limit=10,
        types=["judgement", "short_vqa"],
        n_per_type=2,
        start=False,
        force=True,
    )
    unit = GenerationUnit.objects.create(
        job=job,
        image=images[0],
        stage="instructions",
        instruction_type="judgement",
        prompt=PromptTemplate.objects.first(),
        endpoint=job.endpoint,
        status=UnitStatus.DONE,
        drafts=2,
        finished_at=timezone.now(),
    )
    failed = GenerationUnit.objects.create(
        job=job,
        image=images[1],
        stage="instructions",
        instruction_type="short_vqa",
        prompt=PromptTemplate.objects.first(),
        endpoint=job.endpoint,
        status=UnitStatus.FAILED,
    )
    UnitFailure.objects.create(
        job=job, unit=failed, image=images[1], error="HTTP 400: <bad> request", attempts=1
    )
    return job, unit


def page(client, admin_user, job) -> str:
    client.force_login(admin_user)
    return re.sub(r"\s+", " ", client.get(f"/generation/jobs/{job.pk}/").content.decode())


def test_parameters_read_as_sentences_not_dicts(client, admin_user, job):
    html = page(client, admin_user, job[0])
    assert "Images of Owls whose review state is no drafts yet, at most 10." in html
    assert "2 questions of each type: Judgement and Short VQA" in html
    assert "{'" not in html and "&#x27;domains&#x27;" not in html


def test_a_queued_job_offers_cancel_only_and_an_ended_one_no_control(client, admin_user, job):
    html = page(client, admin_user, job[0])
    assert "/cancel/" in html and "/pause/" not in html and "/resume/" not in html
    move_job(job[0], JobStatus.RUNNING)
    html = page(client, admin_user, job[0])
    assert "/pause/" in html and "/cancel/" in html and "/resume/" not in html
    move_job(job[0], JobStatus.FAILED)
    html = page(client, admin_user, job[0])
    assert not re.search(r"/(pause|resume|cancel)/", html)
    assert "nothing to pause or cancel" in html
    assert 'class="progress failed"' in html  # red, not a full blue bar


def test_the_page_links_to_its_drafts_and_failures(client, admin_user, job):
    job_, unit = job
    html = page(client, admin_user, job_)
    assert f'href="/images/{unit.image_id}/"' in html and 'id="drafts"' in html
    assert "HTTP 400: &lt;bad&gt; request" in html and 'id="failures"' in html


def test_the_job_list_shows_a_bar_per_job_coloured_by_status(client, admin_user, job):
    move_job(job[0], JobStatus.RUNNING)
    move_job(job[0], JobStatus.FAILED)
    client.force_login(admin_user)
    html = client.get("/generation/").content.decode()
    assert 'class="progress failed"' in html


@pytest.mark.parametrize(("stage", "label"), [("conversation", "dialogue"), ("ocr", "OCR text")])
def test_units_of_a_stage_without_types_are_named_by_what_they_write(client, admin_user, job, stage, label):
    job_, unit = job
    job_.units.update(stage=stage, instruction_type="")
    UnitFailure.objects.filter(job=job_).update(instruction_type="")
    type(job_).objects.filter(pk=job_.pk).update(stage=stage)
    html = page(client, admin_user, job_)
    cells = re.findall(r"</a></td><td>([^<]*)</td>", html)
    assert cells == [label, label], cells  # the drafted unit's row, the failure's row
    assert "<td>caption</td>" not in html
