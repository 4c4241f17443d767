"""The review page shows its image in Chromium when the app runs as in production: gunicorn alone (the
media view streams the file) and behind the shipped nginx config (X-Accel-Redirect). Not on pytest-django's
live server: that one serves MEDIA_URL itself, around the app, so it would prove nothing about the view."""

import pytest
from playwright.sync_api import expect

from corpus.rules import InstructionType
from tests.corpus.factories import DomainFactory
from tests.review.conftest import make_pending_image
from tests.test_nginx_proxy import running_app, running_nginx

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("behind_nginx", [False, True], ids=["gunicorn-alone", "behind-nginx"])
def test_the_review_page_shows_the_image_with_and_without_the_proxy(
    page, postgres, settings, tmp_path, annotator, behind_nginx
):
    image = make_pending_image(DomainFactory(), types=(InstructionType.SHORT_VQA,))
    with running_app(settings, tmp_path, accel=behind_nginx) as app:
        if behind_nginx:
            proxy = running_nginx(app, settings, tmp_path)
            url = proxy.__enter__()
        else:
            proxy, url = None, app
        try:
            page.set_default_timeout(15_000)
            page.goto(f"{url}/accounts/login/")
            page.fill("input[name=username]", annotator.username)
            page.fill("input[name=password]", "pw-" + annotator.username)
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/")
            page.goto(f"{url}/review/")
            page.click("#take-next")
            page.wait_for_url(f"{url}/review/image/{image.pk}/")
            img = page.locator("img.zoomable")
            expect(img).to_have_attribute("src", image.file.url)
            page.wait_for_function("() => document.querySelector('img.zoomable').complete")
            assert img.evaluate("el => el.naturalWidth") == image.width > 0
            # Signed out, the same URL sends to the login page, not the picture (asked outside the page's
            # cache, which may keep a private copy).
            page.context.clear_cookies()
            response = page.context.request.get(f"{url}{image.file.url}", max_redirects=0)
            assert response.status == 302 and "/accounts/login/" in response.headers["location"]
        finally:
            if proxy is not None:
                proxy.__exit__(None, None, None)
