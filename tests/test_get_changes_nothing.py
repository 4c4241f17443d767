"""A GET only reads. Every page and endpoint of the site is opened with GET by every kind of visitor
(admin, annotator — also on an image they hold —, researcher, no role, anonymous) over a corpus with
something of everything, and the whole database is compared before and after each request: not one row
may appear, vanish or change. A route added later without a URL in WALK fails the coverage test below."""

import hashlib

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from corpus.models import Image, ItemStatus, ReviewStatus
from corpus.rules import InstructionType
from corpus.services.dataset_import import stage_dataset_upload
from corpus.services.import_batches import stage_upload
from exports.services.build import build_version
from exports.services.specs import allocate_version, create_spec
from generation import services as generation
from generation.models import Endpoint, PromptTemplate
from review.services.queue import claim_next_image
from review.services.second_pass import sample_for_second_pass
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory, png_bytes

pytestmark = pytest.mark.django_db


def database_state() -> str:
    """One digest of every row of every table the project's models (and Django's) own."""
    digest = hashlib.sha256()
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        rows = model._base_manager.order_by("pk").values_list()
        digest.update(f"{model._meta.label}:{list(rows)!r}".encode())
    return digest.hexdigest()


@pytest.fixture
def world(admin_user, annotator, researcher, settings):
    """Something of everything a URL can point at."""
    settings.REVIEW_SECOND_PASS_SHARE = 1.0
    domain = DomainFactory(slug="walk", name="Walk")
    images = ImageFactory.create_batch(4, domain=domain)
    for image in images:
        CaptionFactory(image=image)
        for kind in InstructionType:
            InstructionFactory(image=image, type=kind, status=ItemStatus.ACCEPTED)
    InstructionFactory(image=images[1], status=ItemStatus.DRAFT)
    InstructionFactory(image=images[2], status=ItemStatus.DRAFT)
    Image.objects.filter(pk__in=[images[1].pk, images[2].pk]).update(review_status=ReviewStatus.PENDING)
    Image.objects.filter(pk__in=[images[0].pk, images[3].pk]).update(review_status=ReviewStatus.REVIEWED)
    held = claim_next_image(annotator)  # images[1], leased to the annotator
    second = sample_for_second_pass(images[3].pk, first_reviewer=admin_user)
    generation.ensure_default_endpoints()
    generation.ensure_default_prompts()
    job = generation.launch_job(stage="captions", by=admin_user, domains=["walk"], start=False, force=True)
    spec = create_spec("walk", by=researcher, formats=["llava"])
    v1 = build_version(allocate_version(spec, by=researcher))
    v2 = build_version(allocate_version(spec, by=researcher))
    batch = stage_upload([SimpleUploadedFile("staged.png", png_bytes(99))], domain=domain, by=admin_user)
    dataset_import = stage_dataset_upload(
        SimpleUploadedFile("data.json", b"[]"), format="llava", domain=domain, by=admin_user
    )
    caption = images[1].captions.get()
    instruction = images[1].instructions.filter(status=ItemStatus.DRAFT).get()
    return {
        "domain": domain,
        "image": images[0],
        "held": Image.objects.get(pk=held),
        "pending": images[2],
        "caption": caption,
        "instruction": instruction,
        "second": second,
        "job": job,
        "endpoint": Endpoint.objects.filter(is_default=True).first(),
        "prompt": PromptTemplate.objects.first(),
        "spec": spec,
        "v1": v1,
        "v2": v2,
        "batch": batch,
        "dataset_import": dataset_import,
    }


def walk(w) -> list[str]:
    """A GET for every route (format-suffix twins of API routes aside)."""
    img, held, cap, ins = w["image"], w["held"], w["caption"], w["instruction"]
    return [
        "/",
        "/favicon.ico",
        "/accounts/login/",
        "/accounts/logout/",
        "/domains/",
        f"/domains/{w['domain'].slug}/",
        f"/domains/{w['domain'].slug}/edit/",
        "/images/",
        f"/images/{img.pk}/",
        "/images/import/",
        "/images/bulk/",
        f"/images/import/{w['batch'].pk}/",
        "/datasets/import/",
        f"/datasets/import/{w['dataset_import'].pk}/",
        img.file.url,
        img.thumbnail.url if img.thumbnail else img.file.url,
        "/generation/",
        f"/generation/jobs/{w['job'].pk}/",
        f"/generation/jobs/{w['job'].pk}/progress/",
        f"/generation/jobs/{w['job'].pk}/pause/",
        "/generation/endpoints/",
        f"/generation/endpoints/{w['endpoint'].pk}/default/",
        f"/generation/endpoints/{w['endpoint'].pk}/test/",
        "/generation/prompts/",
        "/generation/prompts/new/",
        f"/generation/prompts/{w['prompt'].pk}/edit/",
        "/generation/costs/",
        "/review/",
        "/review/next/",
        "/review/next/flagged/",
        f"/review/image/{held.pk}/",
        f"/review/image/{w['pending'].pk}/",
        f"/review/image/{img.pk}/",
        f"/review/image/{held.pk}/panel/",
        f"/review/image/{w['pending'].pk}/panel/",
        f"/review/image/{w['pending'].pk}/take/",
        f"/review/image/{img.pk}/reopen/",
        f"/review/image/{held.pk}/previous/",
        f"/review/image/{held.pk}/add/",
        f"/review/item/caption/{cap.pk}/",
        f"/review/item/instruction/{ins.pk}/save/",
        f"/review/item/instruction/{ins.pk}/history/",
        f"/review/item/caption/{cap.pk}/regenerate/",
        "/review/validate/",
        "/review/second/",
        f"/review/second/{w['second'].pk}/",
        "/review/second/disagreements/",
        "/review/stats/",
        f"/review/auto-accept/{w['domain'].slug}/",
        "/exports/",
        "/exports/new/",
        f"/exports/{w['spec'].pk}/build/",
        f"/exports/versions/{w['v2'].pk}/",
        f"/exports/versions/{w['v2'].pk}/progress/",
        f"/exports/versions/{w['v2'].pk}/download/",
        f"/exports/versions/{w['v2'].pk}/diff/?against={w['v1'].pk}",
        "/api/v1/",
        "/api/schema/",
        "/api/docs/",
        "/api/v1/domains/",
        f"/api/v1/domains/{w['domain'].slug}/",
        "/api/v1/images/",
        f"/api/v1/images/{img.pk}/",
        "/api/v1/images/upload/",
        "/api/v1/import-batches/",
        "/api/v1/dataset-imports/",
        f"/api/v1/dataset-imports/{w['dataset_import'].pk}/",
        f"/api/v1/import-batches/{w['batch'].pk}/",
        f"/api/v1/captions/?image={held.pk}",
        f"/api/v1/captions/{cap.pk}/",
        "/api/v1/instructions/",
        f"/api/v1/instructions/{ins.pk}/",
        "/api/v1/generation/endpoints/",
        f"/api/v1/generation/endpoints/{w['endpoint'].pk}/",
        f"/api/v1/generation/endpoints/{w['endpoint'].pk}/make_default/",
        f"/api/v1/generation/endpoints/{w['endpoint'].pk}/test_connection/",
        "/api/v1/generation/prompts/",
        f"/api/v1/generation/prompts/{w['prompt'].pk}/",
        "/api/v1/generation/jobs/",
        f"/api/v1/generation/jobs/{w['job'].pk}/",
        f"/api/v1/generation/jobs/{w['job'].pk}/cancel/",
        f"/api/v1/generation/jobs/{w['job'].pk}/pause/",
        f"/api/v1/generation/jobs/{w['job'].pk}/resume/",
        "/api/v1/review/images/next/",
        f"/api/v1/review/images/{held.pk}/",
        f"/api/v1/review/images/{held.pk}/renew/",
        f"/api/v1/review/images/{held.pk}/release/",
        f"/api/v1/review/images/{img.pk}/reopen/",
        f"/api/v1/review/images/{w['pending'].pk}/take/",
        f"/api/v1/review/captions/{cap.pk}/history/",
        f"/api/v1/review/captions/{cap.pk}/regenerate/",
        f"/api/v1/review/captions/{cap.pk}/save/",
        f"/api/v1/review/instructions/{ins.pk}/history/",
        f"/api/v1/review/instructions/{ins.pk}/regenerate/",
        f"/api/v1/review/instructions/{ins.pk}/save/",
        "/api/v1/review/quality/report/",
        "/api/v1/review/quality/next-flagged/",
        f"/api/v1/review/quality/{w['domain'].slug}/auto-accept/",
        "/api/v1/exports/",
        "/api/v1/exports/preview/?domains=walk&types=judgement",
        f"/api/v1/exports/{w['spec'].pk}/",
        f"/api/v1/exports/{w['spec'].pk}/build/",
        "/api/v1/export-versions/",
        f"/api/v1/export-versions/{w['v2'].pk}/",
        f"/api/v1/export-versions/{w['v2'].pk}/diff/?against={w['v1'].pk}",
        f"/api/v1/export-versions/{w['v2'].pk}/download/",
        "/healthz/",  # answered by web.health's middleware, before the URL resolver
    ]


def route_names() -> set[str]:
    """Every named route but the Django admin's and DRF's format-suffix twins."""

    def names(patterns, namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace == "admin":
                    continue
                inner = f"{namespace}{p.namespace}:" if p.namespace else namespace
                yield from names(p.url_patterns, inner)
            elif isinstance(p, URLPattern) and p.name and "format" not in p.pattern.regex.groupindex:
                yield namespace + p.name

    return set(names(get_resolver().url_patterns))


def test_the_walk_covers_every_route(world):
    walked = {resolve(url.split("?")[0]).view_name for url in walk(world) if url != "/healthz/"}
    missing = route_names() - walked
    assert not missing, f"add a GET of these routes to the walk: {sorted(missing)}"


@pytest.mark.parametrize("who", ["admin_user", "annotator", "researcher", "outsider", None])
def test_no_get_changes_the_database(world, request, who, settings):
    # Far enough from every lease's end that no request near the boundary sees a lease run out.
    assert world["held"].lease_expires_at > timezone.now()
    client = Client()
    if who:
        client.force_login(request.getfixturevalue(who))
    changed = []
    for url in walk(world):
        before = database_state()
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        if database_state() != before:
            changed.append(f"{url} ({response.status_code})")
    assert not changed, f"GET changed the database as {who or 'anonymous'}: {changed}"
