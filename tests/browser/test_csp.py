"""Every page, for each role, in Chromium under the site's Content-Security-Policy: 0 CSP violations,
0 console errors, 0 requests to another host — including the API docs (Swagger UI from local files),
the error pages and guidelines whose Markdown points at an image on another host."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.urls import Resolver404, resolve
from playwright.sync_api import expect

from corpus.models import ImportBatch, ImportBatchStatus, ItemStatus
from corpus.rules import InstructionType
from exports.services.build import build_version
from exports.services.specs import allocate_version, create_spec
from generation.models import Endpoint, GenerationJob, JobStatus, PromptTemplate
from generation.services import ensure_default_endpoints, ensure_default_prompts
from tests.corpus.factories import DomainFactory, InstructionFactory
from tests.review.conftest import make_pending_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Collected by the page itself, from its first script on: what the browser refused.
LISTEN_FOR_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def media_is_routed() -> bool:
    """Whether this configuration serves MEDIA_URL at all (embedded mode; everywhere once media sits behind
    the role check). Where it does not, an image's 404 is about deployment, not about the page."""
    try:
        resolve(f"/{settings.MEDIA_URL.strip('/')}/probe.png")
    except Resolver404:
        return False
    return True


class Watcher:
    """Everything a page does wrong, gathered while it loads and runs."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.host = urlsplit(base_url).netloc
        self.problems: list[str] = []
        self.expected: tuple[str, int] | None = None  # a page visited to see its error status
        self.media_routed = media_is_routed()
        page.add_init_script(LISTEN_FOR_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        page.on("request", self._request)
        page.on("response", self._response)

    def _console(self, message):
        # A failed load is reported by _response, with its URL (and an expected error page is no problem).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console error: {message.text} ({message.location.get('url')})")

    def _request(self, request):
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != self.host:
            self.problems.append(f"request to another host: {request.url}")

    def _response(self, response):
        if response.status < 400 or (response.url, response.status) == self.expected:
            return
        path = urlsplit(response.url).path
        if (
            response.status == 404
            and path.startswith(f"/{settings.MEDIA_URL.strip('/')}/")
            and not self.media_routed
        ):
            return
        self.problems.append(f"{response.status} for {response.url}")

    def visit(self, url: str, expect_status: int = 200) -> None:
        self.expected = (url, expect_status)
        response = self.page.goto(url)
        assert response is not None and response.status == expect_status, (url, response and response.status)
        self.page.wait_for_load_state("networkidle")
        self.collect(url)

    def collect(self, where: str) -> None:
        violations = self.page.evaluate("window.__cspViolations || []")
        self.problems += [f"CSP violation on {where}: {v}" for v in violations]

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def site(admin_user, researcher, annotator):
    """One of everything a page can show, with guidelines that try to load an image from another host."""
    ensure_default_endpoints()
    ensure_default_prompts()
    domain = DomainFactory(
        slug="charts",
        name="Charts",
        guidelines="Check **axes** first. ![tracker](https://tracker.example/pixel.png) ![local](/static/css/app.css)",
    )
    images = [make_pending_image(domain, types=(t,)) for t in InstructionType]
    for image in images[:2]:
        InstructionFactory(image=image, type=InstructionType.SHORT_VQA, status=ItemStatus.ACCEPTED)
    job = GenerationJob.objects.create(
        stage="captions", endpoint=Endpoint.objects.filter(is_default=True).first(), status=JobStatus.DONE
    )
    spec = create_spec("csp-check", by=researcher, formats=["llava"])
    version = build_version(allocate_version(spec, by=researcher), actor=researcher)
    batch = ImportBatch.objects.create(
        domain=domain, created_by=admin_user, status=ImportBatchStatus.DONE, staging_dir="import-staging/none"
    )
    instruction = images[0].instructions.first()
    return {
        "domain": domain,
        "image": images[0],
        "job": job,
        "prompt": PromptTemplate.objects.first(),
        "version": version,
        "spec": spec,
        "batch": batch,
        "instruction": instruction,
    }


def every_role_pages(site) -> list[str]:
    return [
        "/",
        "/domains/",
        f"/domains/{site['domain'].slug}/",
        "/images/",
        f"/images/{site['image'].pk}/",
        "/api/docs/",
    ]


@pytest.fixture(autouse=True)
def _patient(page):
    page.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)


def test_admin_pages_have_no_csp_violations_console_errors_or_foreign_requests(
    page, live_server, login, admin_user, site
):
    watcher = Watcher(page, live_server.url)
    login(page, admin_user)
    base = live_server.url
    pages = every_role_pages(site) + [
        f"/domains/{site['domain'].slug}/edit/",
        "/images/import/",
        f"/images/import/{site['batch'].pk}/",
        "/generation/",
        f"/generation/jobs/{site['job'].pk}/",
        "/generation/endpoints/",
        "/generation/prompts/",
        "/generation/prompts/new/",
        f"/generation/prompts/{site['prompt'].pk}/edit/",
        "/generation/costs/",
        "/review/stats/",
        "/review/second/disagreements/",
        "/exports/",
        "/exports/new/",
        f"/exports/versions/{site['version'].pk}/",
        "/django-admin/",
        "/django-admin/auth/user/",
        f"/django-admin/auth/user/{admin_user.pk}/change/",
    ]
    for path in pages:
        watcher.visit(base + path)
    watcher.visit(base + "/no-such-page/", expect_status=404)
    watcher.assert_clean()


def test_annotator_pages_including_the_review_page(page, live_server, login, annotator, site):
    watcher = Watcher(page, live_server.url)
    login(page, annotator)
    base = live_server.url
    for path in every_role_pages(site) + ["/review/", "/review/second/"]:
        watcher.visit(base + path)
    # The review page itself: claimed by the form, as a person does.
    watcher.visit(base + "/review/")
    page.click("#take-next")
    page.wait_for_url(re.compile(r".*/review/image/\d+/$"))
    expect(page.locator('#review-root[data-ready="true"]')).to_have_count(1)
    page.keyboard.press("?")  # the shortcuts overlay
    page.keyboard.press("Escape")
    page.wait_for_load_state("networkidle")
    watcher.collect("the review page")
    assert "tracker.example" not in page.content()  # the guidelines' foreign image was dropped
    watcher.visit(base + f"/review/item/instruction/{site['instruction'].pk}/history/")
    watcher.visit(base + "/generation/", expect_status=403)
    watcher.assert_clean()


def test_researcher_pages(page, live_server, login, researcher, site):
    watcher = Watcher(page, live_server.url)
    login(page, researcher)
    base = live_server.url
    pages = every_role_pages(site) + [
        "/exports/",
        "/exports/new/",
        f"/exports/versions/{site['version'].pk}/",
        f"/review/item/instruction/{site['instruction'].pk}/history/",
    ]
    for path in pages:
        watcher.visit(base + path)
    watcher.visit(base + "/review/", expect_status=403)
    watcher.assert_clean()


def test_swagger_ui_renders_the_schema_from_local_files(page, live_server, login, researcher):
    watcher = Watcher(page, live_server.url)
    login(page, researcher)
    watcher.visit(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("MMInstruct Studio API")
    expect(page.locator(".opblock").first).to_be_visible()
    watcher.assert_clean()


def test_login_page_and_lockout_message_are_clean(page, live_server, annotator):
    watcher = Watcher(page, live_server.url)
    watcher.visit(f"{live_server.url}/accounts/login/")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.fill("input[name=username]", annotator.username)
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
    expect(page.locator("[data-locked-out]")).to_contain_text("Logging in is paused")
    watcher.collect("the lockout page")
    # The lockout page is answered with 429 (that is its point); nothing else may go wrong.
    assert [p for p in watcher.problems if not p.startswith("429 for ")] == []
