"""Each role sees only its part of the platform: one table of pages and endpoints from every app, checked
for every role, with the right answer for a wrong role (403) and for an anonymous visitor (login page for
pages, 401 with WWW-Authenticate for the API). Nothing is created: a refused request must not reach the service."""

import pytest
from django.test import Client

from corpus.models import DatasetImport
from exports.models import ExportSpec
from generation.models import GenerationJob

pytestmark = pytest.mark.django_db

ADMIN_ONLY_PAGES = [
    "/images/import/",
    "/django-admin/",
    "/generation/",
    "/generation/endpoints/",
    "/generation/prompts/",
    "/generation/costs/",
    "/review/stats/",
    "/datasets/import/",
]
ANNOTATOR_PAGES = ["/review/"]
RESEARCHER_PAGES = ["/exports/", "/exports/new/"]
EVERY_ROLE_PAGES = ["/", "/domains/", "/images/"]


def status_of(client: Client, method: str, url: str) -> int:
    return getattr(client, method)(
        url, **({"content_type": "application/json"} if method == "post" else {})
    ).status_code


@pytest.mark.parametrize("url", ADMIN_ONLY_PAGES + ANNOTATOR_PAGES + RESEARCHER_PAGES + EVERY_ROLE_PAGES)
def test_admin_opens_every_page(client, admin_user, url):
    client.force_login(admin_user)
    assert status_of(client, "get", url) == 200


@pytest.mark.parametrize("url", ADMIN_ONLY_PAGES + RESEARCHER_PAGES)
def test_annotator_gets_403_on_admin_and_export_pages(client, annotator, url):
    client.force_login(annotator)
    assert status_of(client, "get", url) == 403


@pytest.mark.parametrize("url", ADMIN_ONLY_PAGES + ANNOTATOR_PAGES)
def test_researcher_gets_403_on_admin_and_review_pages(client, researcher, url):
    client.force_login(researcher)
    assert status_of(client, "get", url) == 403


@pytest.mark.parametrize("url", ANNOTATOR_PAGES + RESEARCHER_PAGES + EVERY_ROLE_PAGES[1:])
def test_user_without_a_role_gets_403(client, outsider, url):
    client.force_login(outsider)
    assert status_of(client, "get", url) == 403


@pytest.mark.parametrize(
    "url", ADMIN_ONLY_PAGES[:1] + ADMIN_ONLY_PAGES[2:] + ANNOTATOR_PAGES + RESEARCHER_PAGES + EVERY_ROLE_PAGES
)
def test_anonymous_visitor_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_annotator_cannot_launch_jobs_or_build_exports(client, annotator):
    client.force_login(annotator)
    assert client.post("/generation/", {"stage": "captions"}).status_code == 403
    assert status_of(client, "post", "/api/v1/generation/jobs/") == 403
    assert client.post("/exports/new/", {"name": "sneaky"}).status_code == 403
    assert status_of(client, "post", "/api/v1/exports/") == 403
    assert not GenerationJob.objects.exists() and not ExportSpec.objects.exists()


@pytest.mark.parametrize("person", ["annotator", "researcher", "outsider"])
def test_only_admins_import_datasets(client, request, person):
    client.force_login(request.getfixturevalue(person))
    assert client.post("/datasets/import/", {"format": "llava"}).status_code == 403
    assert client.post("/api/v1/dataset-imports/", {"format": "llava"}).status_code == 403
    assert client.get("/api/v1/dataset-imports/").status_code == 403
    assert not DatasetImport.objects.exists()


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", "/api/v1/images/"),
        ("get", "/api/v1/generation/jobs/"),
        ("post", "/api/v1/review/images/next/"),
        ("get", "/api/v1/exports/"),
        ("post", "/api/v1/dataset-imports/"),
    ],
)
def test_anonymous_api_request_is_refused_with_401_and_how_to_authenticate(client, method, url):
    response = getattr(client, method)(
        url, **({"content_type": "application/json"} if method == "post" else {})
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("url", ["/api/docs/", "/api/schema/", "/healthz/"])
def test_docs_schema_and_health_probe_are_open_to_anonymous_visitors(client, url):
    """The API's documentation is public (it holds no data); the probe answers only "ok"."""
    assert client.get(url).status_code == 200


def test_admin_role_manages_users_in_the_django_admin(client, admin_user, annotator):
    client.force_login(admin_user)
    assert client.get("/django-admin/auth/user/").status_code == 200
    assert client.get(f"/django-admin/auth/user/{annotator.pk}/change/").status_code == 200


def test_only_annotators_take_the_most_flagged_image(client, researcher, outsider):
    for person in (researcher, outsider):
        client.force_login(person)
        assert client.post("/review/next/flagged/").status_code == 403
    client.logout()
    response = client.post("/review/next/flagged/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_only_admins_switch_auto_accept_or_read_the_quality_report(client, annotator, researcher):
    from corpus.models import Domain

    Domain.objects.create(name="Roles", slug="roles")
    for person in (annotator, researcher):
        client.force_login(person)
        assert client.post("/review/auto-accept/roles/", {"on": "1"}).status_code == 403
        assert client.get("/api/v1/review/quality/report/").status_code == 403
        assert status_of(client, "post", "/api/v1/review/quality/roles/auto-accept/") == 403
    client.logout()
    assert client.get("/api/v1/review/quality/report/").status_code == 401


# JSON endpoints the studio's pages call (issue 13): who gets what, anonymous included (401).
STUDIO_ENDPOINTS = {
    "/api/v1/exports/preview/": {"admin_user": 200, "researcher": 200, "annotator": 403, "outsider": 403},
}


@pytest.mark.parametrize("url", sorted(STUDIO_ENDPOINTS))
@pytest.mark.parametrize("who", ["admin_user", "annotator", "researcher", "outsider", None])
def test_studio_endpoints_answer_each_role(client, request, url, who):
    if who is None:
        assert client.get(url).status_code == 401
        return
    client.force_login(request.getfixturevalue(who))
    assert client.get(url).status_code == STUDIO_ENDPOINTS[url][who]
