"""A researcher creates an export in the browser, watches it build (htmx polling), and downloads it."""

import hashlib
import re

import pytest

from corpus.models import ItemStatus
from exports.models import ExportSpec
from exports.services.build import build_version
from tests.corpus.factories import DomainFactory, ImageFactory, InstructionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_researcher_creates_an_export_sees_it_finish_and_downloads_the_archive(
    page, live_server, login, researcher
):
    domain = DomainFactory(slug="browser-domain")
    for _ in range(2):
        image = ImageFactory(domain=domain)
        InstructionFactory(image=image, type="judgement", status=ItemStatus.ACCEPTED)
        InstructionFactory(image=image, type="multiple_choice", status=ItemStatus.ACCEPTED)

    login(page, researcher)
    page.get_by_role("navigation", name="Main").get_by_text("Exports").click()
    page.get_by_role("link", name="New export").click()
    page.fill("input[name=name]", "browser-export")
    page.check("input[name=formats][value=sharegpt]")
    page.get_by_role("button", name="Create and build v1").click()
    page.wait_for_url(re.compile(r"/exports/versions/\d+/$"))
    assert page.locator("[data-status=queued]").is_visible()

    # No worker in this test: build it here while the page polls its progress partial.
    version = ExportSpec.objects.get(name="browser-export").versions.get()
    build_version(version)
    page.locator("[data-status=done]").wait_for(timeout=10_000)
    version.refresh_from_db()
    assert version.sha256 in page.locator("#progress").inner_text()

    with page.expect_download() as info:
        page.get_by_role("link", name="Download v1").click()
    path = info.value.path()
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == version.sha256

    page.get_by_role("link", name="← Exports").click()
    row = page.locator("tr.version").first
    assert "v1" in row.inner_text() and version.sha256 in row.inner_text()


def test_annotator_sees_no_exports_link_and_gets_403(page, live_server, login, annotator):
    login(page, annotator)
    assert page.get_by_role("navigation", name="Main").get_by_text("Exports").count() == 0
    response = page.goto(f"{live_server.url}/exports/")
    assert response.status == 403
