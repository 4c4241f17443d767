"""Domains pages in a real Chromium: counts and the admin's seed-question edit."""

import pytest
from playwright.sync_api import expect

from corpus.models import SeedQuestion
from tests.corpus.factories import DomainFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_adds_a_seed_question_and_a_broken_one_is_refused(page, live_server, login, admin_user):
    # A domain of its own: a transactional test before this one may have flushed the migrated domains.
    DomainFactory(name="Landmark Test", slug="landmark")
    login(page, admin_user)
    page.goto(f"{live_server.url}/domains/")
    expect(page.locator("table.domains")).to_contain_text("Landmark Test")
    page.goto(f"{live_server.url}/domains/landmark/edit/")
    last = page.locator("tr.seed-form").last
    last.locator("select").select_option("judgement")
    last.locator("textarea[name$=question]").fill("Is the landmark a bridge?")
    last.locator("textarea[name$=answer]").fill("Perhaps")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("body")).to_contain_text("a Judgement answer must be Yes or No")

    last = page.locator("tr.seed-form").last
    last.locator("textarea[name$=answer]").fill("no.")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live_server.url}/domains/landmark/")
    expect(page.locator("body")).to_contain_text("Is the landmark a bridge?")
    assert SeedQuestion.objects.get(question="Is the landmark a bridge?").answer == "No"
