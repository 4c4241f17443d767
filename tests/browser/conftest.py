"""Browser tests: Playwright for Python driving Debian's Chromium against pytest-django's live_server."""

import os
from pathlib import Path

import pytest

from tests.conftest import require

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(autouse=True)
def _need_chromium():
    require(CHROMIUM.exists(), "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")


@pytest.fixture
def login(live_server):
    """login(page, user): log in through the real login form."""

    def do_login(page, user):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", "pw-" + user.username)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

    return do_login
