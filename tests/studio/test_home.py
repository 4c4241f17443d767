"""The home page of each role: the numbers that say where things stand, and the next step from each."""

import re

import pytest

from corpus.models import ItemStatus, ReviewStatus
from corpus.services.items import update_item
from generation import services as generation
from generation.models import GenerationJob, JobStatus, Stage
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory
from tests.review.conftest import make_pending_image

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def step(html: str, domain: str, key: str) -> int:
    """The number on one step of one domain's funnel."""
    block = html.split(f'data-domain="{domain}"', 1)[1]
    return int(re.search(rf'data-step="{key}">.*?class="step-n">(\d+)<', block).group(1))


@pytest.fixture
def pipeline():
    """One domain at every stage: 2 new images, 1 captioned only, 2 pending with drafts, 1 reviewed."""
    domain = DomainFactory(slug="pipe", name="Pipe")
    ImageFactory.create_batch(2, domain=domain)
    captioned = ImageFactory(domain=domain, review_status=ReviewStatus.PENDING)
    CaptionFactory(image=captioned, status=ItemStatus.ACCEPTED)
    make_pending_image(domain)
    make_pending_image(domain)
    done = ImageFactory(domain=domain, review_status=ReviewStatus.REVIEWED)
    CaptionFactory(image=done, status=ItemStatus.ACCEPTED)
    InstructionFactory(image=done, status=ItemStatus.ACCEPTED)
    return domain


def test_admin_home_shows_the_funnel_with_the_next_action(client, admin_user, pipeline):
    client.force_login(admin_user)
    html = text(client.get("/"))
    assert [
        step(html, "pipe", k) for k in ("imported", "captioned", "instructed", "in_review", "reviewed")
    ] == [
        6,
        4,
        3,
        3,
        1,
    ]
    assert "Caption the 2 uncaptioned" in html
    assert "Write instructions for 1 captioned" in html
    assert "3 to review" in html


def test_the_caption_button_launches_a_caption_job_for_that_domain(client, admin_user, pipeline):
    generation.ensure_default_endpoints()
    client.force_login(admin_user)
    response = client.post(
        "/generation/",
        {"stage": "captions", "domains": "pipe", "statuses": "new", "n_per_type": 3, "seeds_per_prompt": 2},
    )
    assert response.status_code in (302, 409)  # 409: the demo endpoint has no key here; the page asks first
    if response.status_code == 409:
        response = client.post(
            "/generation/",
            {
                "stage": "captions",
                "domains": "pipe",
                "statuses": "new",
                "n_per_type": 3,
                "seeds_per_prompt": 2,
                "force": "on",
            },
        )
    job = GenerationJob.objects.get()
    assert (job.stage, job.selection["domains"], job.selection["statuses"]) == (
        Stage.CAPTIONS,
        ["pipe"],
        ["new"],
    )


def test_admin_home_lists_active_jobs_and_says_when_nothing_failed(client, admin_user, pipeline):
    generation.ensure_default_endpoints()
    generation.ensure_default_prompts()
    job = generation.launch_job(stage="captions", by=admin_user, domains=["pipe"], start=False, force=True)
    client.force_login(admin_user)
    html = text(client.get("/"))
    assert f"/generation/jobs/{job.pk}/" in html and job.status == JobStatus.QUEUED
    assert "Nothing failed lately." in html
    assert "Spend today" in html


def test_annotator_home_shows_the_queue_today_and_the_big_button(client, annotator, pipeline):
    image = make_pending_image(pipeline)
    caption = image.captions.get()
    update_item(caption, by=annotator, expected_version=caption.version, status=ItemStatus.ACCEPTED)
    client.force_login(annotator)
    html = text(client.get("/"))
    assert 'id="take-next"' in html and "Take the next image" in html
    assert re.search(r'class="kpi-value decisions-today">1<', html)
    assert re.search(r"<td>Pipe.*?</td><td class=\"num\">\d+</td>", html)
    assert "home-admin" not in html and "home-researcher" not in html


def test_researcher_home_with_nothing_yet_says_where_to_start(client, researcher):
    client.force_login(researcher)
    html = text(client.get("/"))
    assert "No export yet." in html and "/exports/new/" in html
    assert "Nothing accepted yet" in html
    assert "home-annotator" not in html


def test_researcher_home_shows_what_changed_since_the_latest_version(client, researcher, pipeline):
    from exports.services.build import build_version
    from exports.services.specs import allocate_version, create_spec

    spec = create_spec("pipe-set", by=researcher, formats=["llava"], selection={"domains": ["pipe"]})
    version = build_version(allocate_version(spec, by=researcher))
    InstructionFactory(image=ImageFactory(domain=pipeline), status=ItemStatus.ACCEPTED)
    client.force_login(researcher)
    html = text(client.get("/"))
    assert f"/exports/versions/{version.pk}/" in html
    assert "1 more</strong> match now" in html
    assert re.search(r"<td>Pipe</td><td class=\"num\">2</td>", html)


def test_a_person_without_a_role_is_told_to_ask_an_admin(client, outsider):
    client.force_login(outsider)
    assert "no role yet" in text(client.get("/"))


def test_home_pages_take_a_bounded_number_of_queries(
    client, admin_user, pipeline, django_assert_max_num_queries
):
    for _ in range(5):
        make_pending_image(DomainFactory())
    client.force_login(admin_user)
    with django_assert_max_num_queries(20):
        assert client.get("/").status_code == 200
