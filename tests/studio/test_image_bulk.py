"""The image browser: search by id, file name or caption words; bulk actions for admins (generate
captions, move to a domain, queue for review), each through its app's service."""

import pytest

from corpus.models import Image, ItemStatus, ReviewStatus
from generation import services as generation
from generation.models import GenerationJob, Stage
from generation.services.jobs import selected_images
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def images():
    domain = DomainFactory(slug="zoo", name="Zoo")
    a = ImageFactory(domain=domain, original_name="giraffe-01.png")
    b = ImageFactory(domain=domain, original_name="lion.png")
    CaptionFactory(image=b, text="A lion sleeping under an acacia tree.")
    c = ImageFactory(domain=domain, original_name="misc.png", review_status=ReviewStatus.REVIEWED)
    InstructionFactory(image=c, status=ItemStatus.DRAFT)
    return a, b, c


def ids_on_page(client, **params) -> set[int]:
    response = client.get("/images/", params)
    assert response.status_code == 200
    return {i.pk for i in response.context["page"]}


@pytest.mark.parametrize(
    "query,expected",
    [("giraffe", {0}), ("ACACIA", {1}), ("lion", {1}), ("nothing-like-this", set())],
)
def test_search_by_file_name_and_caption_words(client, annotator, images, query, expected):
    client.force_login(annotator)
    assert ids_on_page(client, q=query) == {images[i].pk for i in expected}


def test_search_by_id(client, annotator, images):
    client.force_login(annotator)
    assert images[2].pk in ids_on_page(client, q=str(images[2].pk))


def test_a_control_character_in_the_search_is_refused_not_a_500(client, annotator, images):
    client.force_login(annotator)
    response = client.get("/images/", {"q": "li\x00on"})
    assert response.status_code == 200 and "control character" in response.content.decode()
    assert client.get("/api/v1/images/", {"q": "li\x00on"}).status_code == 400


def test_bulk_move_to_another_domain(client, admin_user, images):
    other = DomainFactory(slug="farm", name="Farm")
    client.force_login(admin_user)
    response = client.post(
        "/images/bulk/",
        {"action": "move", "domain": "farm", "ids": [images[0].pk, images[1].pk], "next": "/images/?q=x"},
    )
    assert response.status_code == 302 and response["Location"] == "/images/?q=x"
    assert set(Image.objects.filter(domain=other).values_list("pk", flat=True)) == {
        images[0].pk,
        images[1].pk,
    }


def test_bulk_queue_for_review_takes_only_images_with_drafts(client, admin_user, images):
    client.force_login(admin_user)
    client.post("/images/bulk/", {"action": "review", "ids": [i.pk for i in images]})
    statuses = dict(Image.objects.values_list("pk", "review_status"))
    assert statuses[images[2].pk] == ReviewStatus.PENDING  # had a draft
    assert statuses[images[0].pk] == ReviewStatus.NEW  # nothing to review


def test_bulk_generate_captions_launches_one_job_on_exactly_those_images(client, admin_user, images):
    generation.ensure_default_endpoints()
    client.force_login(admin_user)
    response = client.post(
        "/images/bulk/", {"action": "captions", "ids": [images[0].pk, images[1].pk], "force": "on"}
    )
    job = GenerationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/generation/jobs/{job.pk}/"
    assert job.stage == Stage.CAPTIONS and job.selection["image_ids"] == sorted([images[0].pk, images[1].pk])
    assert [i.pk for i in selected_images(job)] == sorted([images[0].pk, images[1].pk])


@pytest.mark.parametrize(
    "data",
    [
        {"action": "move", "ids": []},
        {"action": "move", "ids": ["x"]},
        {"action": "move", "domain": "nowhere", "ids": ["1"]},
        {"action": "explode", "ids": ["1"]},
        {"ids": ["1"], "next": "https://elsewhere.example/"},
    ],
)
def test_bad_bulk_input_is_a_message_not_a_500_and_changes_nothing(client, admin_user, images, data):
    client.force_login(admin_user)
    before = list(Image.objects.order_by("pk").values_list("pk", "domain_id", "review_status"))
    response = client.post("/images/bulk/", data, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].startswith("/images/")
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert list(Image.objects.order_by("pk").values_list("pk", "domain_id", "review_status")) == before
    assert not GenerationJob.objects.exists()


@pytest.mark.parametrize("who", ["annotator", "researcher", "outsider"])
def test_only_admins_act_in_bulk(client, request, images, who):
    client.force_login(request.getfixturevalue(who))
    assert client.post("/images/bulk/", {"action": "review", "ids": [images[2].pk]}).status_code == 403
    assert Image.objects.get(pk=images[2].pk).review_status == ReviewStatus.REVIEWED


def test_the_image_list_takes_a_bounded_number_of_queries(
    client, admin_user, images, django_assert_max_num_queries
):
    ImageFactory.create_batch(10, domain=images[0].domain)
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        assert client.get("/images/", {"q": "png"}).status_code == 200


def test_after_an_import_the_summary_offers_captions_for_exactly_those_images(client, admin_user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.corpus.factories import png_bytes

    domain = DomainFactory(slug="new", name="New")
    client.force_login(admin_user)
    files = [SimpleUploadedFile(f"n{i}.png", png_bytes(500 + i), content_type="image/png") for i in range(2)]
    html = client.post(
        "/images/import/", {"domain": domain.slug, "files": files}, follow=True
    ).content.decode()
    assert "Generate captions for these 2" in html
    ids = sorted(Image.objects.filter(domain=domain).values_list("pk", flat=True))
    for pk in ids:
        assert f'name="ids" value="{pk}"' in html


def test_digits_that_are_not_ascii_are_text_to_search_not_a_500(client, annotator, images):
    client.force_login(annotator)
    assert ids_on_page(client, q="²") == set()  # '²'.isdigit() is True, int('²') raises
    assert client.get("/api/v1/images/", {"q": "²"}).status_code == 200


def test_bulk_ids_that_are_not_ascii_digits_are_left_out(client, admin_user, images):
    client.force_login(admin_user)
    response = client.post("/images/bulk/", {"action": "review", "ids": ["²", "١"]}, follow=True)
    assert response.status_code == 200 and "Tick at least one image first." in response.content.decode()
