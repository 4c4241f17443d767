"""Pages get styled error pages inside the site layout (header, navigation for the person's role) that
say what happened and what to do instead; the API gets JSON for the same errors (tests/test_api_errors.py)."""

import re

import pytest
from django.test import Client, RequestFactory
from django.utils.module_loading import import_string

pytestmark = pytest.mark.django_db


def assert_error_page(response, status: int, heading: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert '<link rel="stylesheet" href="/static/css/app.css">' in html  # the site's layout
    assert f'data-status="{status}"' in html
    assert heading in html
    assert "What you can do" in html and '<a href="/">Go to the home page</a>' in html
    return html


def main_nav(html: str) -> str:
    match = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S)
    return match.group(1) if match else ""


def test_404_page_keeps_the_navigation_of_the_role(client, annotator):
    client.force_login(annotator)
    html = assert_error_page(client.get("/no-such-page/"), 404, "There is nothing here")
    nav = main_nav(html)
    assert 'href="/review/"' in nav and 'href="/generation/"' not in nav
    assert "Nothing is at /no-such-page/." in html


def test_404_for_a_missing_object_page(client, researcher):
    client.force_login(researcher)
    assert_error_page(client.get("/images/999999/"), 404, "There is nothing here")


def test_403_page_says_who_you_are_and_whom_to_ask(client, annotator):
    client.force_login(annotator)
    html = assert_error_page(client.get("/generation/"), 403, "Your role does not open this page")
    assert "ann-annotator" in html and "(annotator)" in html
    assert "ask an admin to give your account the role" in html
    assert 'href="/review/"' in main_nav(html)


def test_403_page_for_someone_without_a_role(client, outsider):
    client.force_login(outsider)
    html = assert_error_page(client.get("/images/"), 403, "Your role does not open this page")
    assert "without a role yet" in html


def test_403_from_the_django_admin_guard_is_the_styled_page(client, researcher):
    client.force_login(researcher)
    assert_error_page(client.get("/django-admin/"), 403, "Your role does not open this page")


def test_form_without_its_csrf_token_gets_the_expired_form_page(annotator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(annotator)
    html = assert_error_page(client.post("/review/next/", {}), 403, "The form could not be sent")
    assert "reload the page" in html


def test_form_with_too_many_fields_is_a_400_page(client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    response = client.post("/accounts/login/", {f"f{i}": "x" for i in range(10)})
    html = assert_error_page(response, 400, "That request could not be understood")
    assert "More than 5 fields" in html


def test_form_body_over_the_limit_is_a_413_page(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/accounts/login/", {"username": "x" * 2000, "password": "y"})
    html = assert_error_page(response, 413, "That request was too large")
    assert "Upload fewer files at once" in html


def test_500_page_is_styled_and_needs_no_database_or_request_context():
    handler = import_string(import_string("mminstruct_site.urls.handler500"))
    response = handler(RequestFactory().get("/review/"))
    html = assert_error_page(response, 500, "Something went wrong on our side")
    assert "the error was logged" in html
    assert main_nav(html) == ""  # no user in the context: no navigation, only the way home


def test_429_page_says_how_long_to_wait(rf):
    from web.error_pages import too_many_requests

    response = too_many_requests(rf.post("/review/next/"), 2.2)
    html = assert_error_page(response, 429, "Slow down a little")
    assert response["Retry-After"] == "3"
    assert "Wait 3 seconds" in html
