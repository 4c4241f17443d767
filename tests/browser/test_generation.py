# ruff: noqa: F811 — the fixtures imported from tests/generation/conftest.py are used as arguments
"""An admin launches a caption job in the browser and watches the progress bar move (real worker)."""

import re
import time

import pytest

from tests.corpus.factories import DomainFactory, ImageFactory
from tests.generation.conftest import (  # noqa: F401 (fixtures)
    _model_key,
    _role_groups,
    fake,
    point_endpoints,
    workers,
)

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_admin_launches_a_job_and_sees_the_progress_bar_move(
    page, live_server, login, admin_user, workers, fake
):
    fake.latency = 0.5
    point_endpoints(fake.base_url, workers, max_concurrency=1)
    DomainFactory(slug="birds", name="Birds")
    ImageFactory.create_batch(8, domain__slug="birds")
    workers.start()

    login(page, admin_user)
    page.goto(f"{live_server.url}/generation/")
    page.select_option("select[name=stage]", "captions")
    page.check("input[name=domains][value=birds]")
    page.click("#launch-form button[type=submit]")
    page.wait_for_url(re.compile(r"/generation/jobs/\d+/$"))

    bar = page.locator("#job-progress [role=progressbar]")
    seen: list[int] = []
    deadline = time.time() + 45
    while time.time() < deadline:
        value = int(bar.get_attribute("aria-valuenow"))
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == 100:
            break
        page.wait_for_timeout(250)
    assert seen[-1] == 100, seen
    assert any(0 < v < 100 for v in seen), f"the bar never showed a value between 0 and 100: {seen}"
    assert seen[0] < 100
    assert seen == sorted(seen)
    page.locator("#job-progress[data-status=done]").wait_for(timeout=10_000)
    assert page.locator("[data-count=done]").inner_text() == "8"
