"""`make screenshots`: every page of the studio, as each role sees it, saved as a PNG under
var/screenshots/<role>/ — so a person can look at the whole studio in a minute — and, for each page,
the console errors and requests to other hosts Chromium saw (printed as a table; the run fails if any).

Not collected by the suite (its name does not start with test_); run it with `make screenshots`. The
pages are the route walk of tests/test_get_changes_nothing.py over its world (something of everything).
"""

import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from playwright.sync_api import Error as PlaywrightError

from tests.test_get_changes_nothing import walk, world  # noqa: F401 — `world` is the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
OUT = Path(settings.BASE_DIR) / "var" / "screenshots"
ROLES = ["admin_user", "annotator", "researcher"]
SKIP = ("/api/v1/", "/api/schema/", "/media/", "/favicon.ico", "/healthz/", "/accounts/logout/")
DOWNLOADS = re.compile(r"/download/$")  # a file, not a page


def pages(w) -> list[str]:
    """The walk's HTML pages (the API's JSON, files and the logout aside)."""
    return [
        url
        for url in walk(w)
        if not url.startswith(SKIP) and not url.startswith(settings.MEDIA_URL) and not DOWNLOADS.search(url)
    ]


def file_name(url: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", url.strip("/")).strip("-") or "home"
    return f"{name}.png"


def test_screenshot_every_page_per_role(browser, live_server, world, request):  # noqa: F811
    host = urlsplit(live_server.url).netloc
    rows, problems = [], []
    started = time.monotonic()
    for role in ROLES:
        user = request.getfixturevalue(role)
        folder = OUT / role.replace("_user", "")
        folder.mkdir(parents=True, exist_ok=True)
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        seen = {"errors": [], "foreign": []}

        def new_page(seen=seen, context=context):
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
            page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
            page.on(
                "request",
                lambda r: (
                    urlsplit(r.url).scheme in ("http", "https")
                    and urlsplit(r.url).netloc != host
                    and seen["foreign"].append(r.url)
                ),
            )
            return page

        page = new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", "pw-" + user.username)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        for url in pages(world):
            seen["errors"].clear()
            seen["foreign"].clear()
            try:
                response = page.goto(f"{live_server.url}{url}")
            except PlaywrightError as exc:
                # An address that takes only POST answers 405 with no body: Chromium shows its own error
                # page, and the next navigation starts from a new tab (same session).
                page.close()
                page = new_page()
                if "ERR_HTTP_RESPONSE_CODE_FAILURE" not in str(exc):
                    raise
                rows.append((role, url, 405, 0, 0, -1))
                continue
            status = response.status if response else 0
            page.wait_for_load_state("networkidle")
            # Navigation start to the page being usable (DOMContentLoaded handlers done), in ms.
            ready_ms = page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return n ? Math.round(n.domContentLoadedEventEnd) : -1; }"
            )
            page.screenshot(path=str(folder / file_name(url)), full_page=True)
            # The console reports each 4xx page load as an error: a refusal the role should get (403,
            # 405 for a POST-only address, 409 for a page that asks first) is the page's answer, not a
            # fault of the page. Anything else (a script error, a missing file) counts.
            errors = [msg for msg in seen["errors"] if not re.search(r"status of (403|404|405|409)\b", msg)]
            rows.append((role, url, status, len(errors), len(seen["foreign"]), ready_ms))
            if errors or seen["foreign"] or status >= 500:
                problems.append((role, url, status, errors, list(seen["foreign"])))
        context.close()
    elapsed = time.monotonic() - started
    print(f"\n{'role':<12} {'status':>6} {'console errors':>14} {'other hosts':>11} {'ready ms':>8}  page")
    for role, url, status, errors, foreign, ready_ms in rows:
        print(f"{role:<12} {status:>6} {errors:>14} {foreign:>11} {ready_ms:>8}  {url}")
    shots = sum(1 for r in rows if r[2] != 405)
    print(f"{shots} screenshots in {OUT} ({elapsed:.0f} s; load average {os.getloadavg()[0]:.1f})")
    assert not problems, problems
