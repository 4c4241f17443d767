"""The corpus pages: who may see them, what they show, how many queries they cost."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from corpus.models import Domain, Image, ItemStatus, ReviewStatus, SeedQuestion
from corpus.rules import InstructionType
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory, png_bytes

pytestmark = pytest.mark.django_db

READ_PAGES = ["/domains/", "/domains/ocr/", "/images/"]
ADMIN_PAGES = ["/images/import/", "/domains/ocr/edit/"]


@pytest.mark.parametrize("url", READ_PAGES + ADMIN_PAGES + ["/"])
def test_anonymous_visitors_are_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", READ_PAGES)
def test_every_role_can_browse(client, annotator, researcher, admin_user, url):
    for user in (annotator, researcher, admin_user):
        client.force_login(user)
        assert client.get(url).status_code == 200, (user.username, url)


@pytest.mark.parametrize("url", READ_PAGES + ADMIN_PAGES)
def test_users_without_a_role_get_403(client, outsider, url):
    client.force_login(outsider)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", ADMIN_PAGES + ["/django-admin/", "/django-admin/corpus/image/"])
def test_annotators_and_researchers_get_403_on_admin_pages(client, annotator, researcher, url):
    for user in (annotator, researcher):
        client.force_login(user)
        assert client.get(url).status_code == 403, (user.username, url)


def test_staff_admin_opens_the_django_admin(client, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", password="pw-boss")
    client.force_login(boss)
    assert client.get("/django-admin/corpus/image/").status_code == 200


def test_image_detail_needs_a_role(client, outsider):
    image = ImageFactory()
    client.force_login(outsider)
    assert client.get(f"/images/{image.pk}/").status_code == 403


def test_domain_list_shows_counts_in_a_constant_number_of_queries(
    client, researcher, django_assert_max_num_queries
):
    client.force_login(researcher)
    for n in range(3):
        domain = DomainFactory(name=f"Counted {n}")
        for _ in range(n + 1):
            image = ImageFactory(domain=domain)
            CaptionFactory(image=image)
            InstructionFactory(image=image, status=ItemStatus.ACCEPTED)
            InstructionFactory(image=image, status=ItemStatus.DRAFT)
    with django_assert_max_num_queries(6):
        response = client.get("/domains/")
    domains = {d.name: d for d in response.context["domains"]}
    assert domains["Counted 2"].n_images == 3
    assert domains["Counted 2"].n_captions == 3
    assert domains["Counted 2"].n_accepted == 3
    assert domains["Counted 2"].n_draft == 3
    assert domains["Counted 0"].n_images == 1


def test_image_browser_filters_by_domain_and_status_in_a_constant_number_of_queries(
    client, annotator, django_assert_max_num_queries
):
    client.force_login(annotator)
    wanted = DomainFactory(slug="wanted")
    other = DomainFactory(slug="other")
    pending = ImageFactory.create_batch(4, domain=wanted, review_status=ReviewStatus.PENDING)
    ImageFactory.create_batch(2, domain=wanted, review_status=ReviewStatus.NEW)
    ImageFactory.create_batch(3, domain=other, review_status=ReviewStatus.PENDING)
    with django_assert_max_num_queries(8):
        response = client.get("/images/", {"domain": "wanted", "review_status": "pending"})
    assert sorted(i.pk for i in response.context["page"]) == sorted(i.pk for i in pending)
    assert b"image-" in response.content


def test_image_browser_paginates(client, annotator):
    client.force_login(annotator)
    ImageFactory.create_batch(50, domain=DomainFactory())
    first = client.get("/images/")
    assert len(first.context["page"]) == 48
    second = client.get("/images/", {"page": 2})
    assert len(second.context["page"]) == 2


def test_htmx_filter_request_gets_only_the_grid(client, annotator):
    client.force_login(annotator)
    ImageFactory()
    response = client.get("/images/", headers={"HX-Request": "true"})
    assert b"<html" not in response.content
    assert b'class="grid"' in response.content


def test_image_detail_shows_captions_and_instructions_escaped(client, annotator):
    image = ImageFactory()
    CaptionFactory(image=image, text="A cat <script>alert(1)</script> on a mat.")
    InstructionFactory(image=image, type=InstructionType.MULTIPLE_CHOICE, question="<b>Which</b> colour?")
    InstructionFactory(image=image, status=ItemStatus.REJECTED, reason="invented a dog")
    client.force_login(annotator)
    html = client.get(f"/images/{image.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Which&lt;/b&gt;" in html
    assert "invented a dog" in html
    assert 'class="badge rejected"' in html


def test_image_detail_links_its_near_duplicate(client, annotator):
    original = ImageFactory()
    copy = ImageFactory(domain=original.domain, near_duplicate_of=original)
    client.force_login(annotator)
    html = client.get(f"/images/{copy.pk}/").content.decode()
    assert f'href="/images/{original.pk}/"' in html


def test_guidelines_markdown_is_rendered_and_sanitised(client, researcher):
    DomainFactory(
        slug="md",
        guidelines="## Rules\n\n- **bold** point\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))",
    )
    client.force_login(researcher)
    html = client.get("/domains/md/").content.decode()
    assert "<h2>Rules</h2>" in html
    assert "<strong>bold</strong>" in html
    assert "<script>alert(1)</script>" not in html
    assert "javascript:alert" not in html


def _edit_payload(domain: Domain, rows: list[dict]) -> dict:
    existing = list(domain.seed_questions.all())
    data = {
        "name": domain.name,
        "description": domain.description,
        "guidelines": domain.guidelines,
        "is_active": "on",
        "seeds-TOTAL_FORMS": str(len(existing) + len(rows)),
        "seeds-INITIAL_FORMS": str(len(existing)),
        "seeds-MIN_NUM_FORMS": "0",
        "seeds-MAX_NUM_FORMS": "60",
    }
    for i, q in enumerate(existing):
        data.update(
            {
                f"seeds-{i}-id": str(q.pk),
                f"seeds-{i}-type": q.type,
                f"seeds-{i}-question": q.question,
                f"seeds-{i}-options_text": "\n".join(q.options),
                f"seeds-{i}-answer": q.answer,
            }
        )
    for j, row in enumerate(rows, start=len(existing)):
        data.update({f"seeds-{j}-{k}": v for k, v in row.items()})
    return data


def test_admin_adds_a_seed_question_with_labelled_options(client, admin_user):
    domain = Domain.objects.get(slug="ocr")
    before = domain.seed_questions.count()
    client.force_login(admin_user)
    row = {
        "type": "multiple_choice",
        "question": "Which word is on the sign?",
        "options_text": "A. STOP\nB. GO\nC. WAIT",
        "answer": "(b)",
    }
    response = client.post("/domains/ocr/edit/", _edit_payload(domain, [row]))
    assert response.status_code == 302
    assert domain.seed_questions.count() == before + 1
    added = SeedQuestion.objects.get(question="Which word is on the sign?")
    assert added.options == ["STOP", "GO", "WAIT"]
    assert added.answer == "B"


def test_seed_question_breaking_the_type_rules_is_refused_with_the_rule(client, admin_user):
    domain = Domain.objects.get(slug="ocr")
    before = domain.seed_questions.count()
    client.force_login(admin_user)
    row = {"type": "judgement", "question": "Is there text?", "options_text": "", "answer": "Maybe"}
    response = client.post("/domains/ocr/edit/", _edit_payload(domain, [row]))
    assert response.status_code == 200
    assert "a Judgement answer must be Yes or No" in response.content.decode()
    assert domain.seed_questions.count() == before


def test_researcher_cannot_post_domain_edits(client, researcher):
    domain = Domain.objects.get(slug="ocr")
    client.force_login(researcher)
    response = client.post("/domains/ocr/edit/", _edit_payload(domain, []) | {"name": "Hacked"})
    assert response.status_code == 403
    assert Domain.objects.get(slug="ocr").name == "OCR"


def test_admin_uploads_several_files_and_sees_the_summary(client, admin_user):
    client.force_login(admin_user)
    files = [
        SimpleUploadedFile("one.png", png_bytes(1), content_type="image/png"),
        SimpleUploadedFile("two.png", png_bytes(2), content_type="image/png"),
        SimpleUploadedFile("again.png", png_bytes(1), content_type="image/png"),
        SimpleUploadedFile("bad.png", b"not an image", content_type="image/png"),
    ]
    response = client.post(
        "/images/import/", {"domain": "ocr", "source": "scanner", "license": "CC0", "files": files}
    )
    assert response.status_code == 200
    summary = response.context["summary"]
    assert (summary["imported"], summary["duplicates"], summary["rejected"]) == (2, 1, 1)
    html = response.content.decode()
    assert "not an image Pillow can read" in html
    assert set(Image.objects.values_list("imported_by", flat=True)) == {admin_user.pk}
    assert set(Image.objects.values_list("source", flat=True)) == {"scanner"}


def test_upload_without_files_says_so(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/images/import/", {"domain": "ocr"})
    assert "Choose at least one image" in response.content.decode()


def test_annotator_cannot_upload(client, annotator):
    client.force_login(annotator)
    files = [SimpleUploadedFile("one.png", png_bytes(1), content_type="image/png")]
    assert client.post("/images/import/", {"domain": "ocr", "files": files}).status_code == 403
    assert not Image.objects.exists()


def test_image_detail_costs_a_constant_number_of_queries(client, annotator, django_assert_max_num_queries):
    image = ImageFactory()
    for _ in range(3):
        caption = CaptionFactory(image=image)
        InstructionFactory(image=image, caption=caption)
        InstructionFactory(image=image, type=InstructionType.JUDGEMENT)
        ImageFactory(domain=image.domain, near_duplicate_of=image)
    client.force_login(annotator)
    with django_assert_max_num_queries(10):
        response = client.get(f"/images/{image.pk}/")
    assert response.content.decode().count('class="caption"') == 3


def test_image_browser_filters_near_duplicates(client, annotator):
    original = ImageFactory()
    copy = ImageFactory(domain=original.domain, near_duplicate_of=original)
    client.force_login(annotator)
    only = client.get("/images/", {"near_duplicates": "true"})
    assert [i.pk for i in only.context["page"]] == [copy.pk]
    without = client.get("/images/", {"near_duplicates": "false"})
    assert [i.pk for i in without.context["page"]] == [original.pk]
    assert "Near-duplicates only" in only.content.decode()


def test_a_user_without_a_role_is_told_so_on_the_home_page(client, outsider):
    client.force_login(outsider)
    html = client.get("/").content.decode()
    assert "no role yet" in html and 'href="/images/"' not in html.split("</nav>")[-1]
