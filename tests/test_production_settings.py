"""Production settings: DEBUG off unless set, required secrets, HTTPS by settings, `check --deploy` clean,
a Content-Security-Policy on every response, Swagger UI from local files, the health probe."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "studio.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://studio.example.org",
    "USE_HTTPS": "true",
    "PROXY_COUNT": "1",
}


def run_django(env: dict, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """manage.py (or a Python snippet after django.setup()) in a fresh process on mminstruct_site.settings."""
    # DJANGO_ALLOW_ASYNC_UNSAFE is the browser tests' (tests/browser/conftest.py), never production's.
    test_only = {"DEBUG", "SECRET_KEY", "USE_HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in test_only}
    clean |= {"DJANGO_SETTINGS_MODULE": "mminstruct_site.settings"} | env
    if code is not None:
        command = [
            sys.executable,
            "-c",
            f"import django; from django.conf import settings; django.setup(); {code}",
        ]
    else:
        command = [sys.executable, "manage.py", *args]
    return subprocess.run(command, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)


def test_check_deploy_with_production_settings_has_no_warnings():
    env = PRODUCTION_ENV | {"SECRET_KEY": secrets.token_urlsafe(50)}
    result = run_django(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_without_https_warns_about_what_is_missing():
    """The test above can fail: without USE_HTTPS the deploy check names the HTTPS settings."""
    env = PRODUCTION_ENV | {"SECRET_KEY": secrets.token_urlsafe(50), "USE_HTTPS": "false"}
    result = run_django(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_debug_is_off_unless_set():
    result = run_django({"SECRET_KEY": "k" * 50}, code="print(settings.DEBUG)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_secret_key_the_error_says_how_to_fix_it():
    result = run_django({}, code="print(settings.DEBUG)")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert "secrets.token_urlsafe" in result.stderr and "DEBUG=true" in result.stderr


def test_a_remote_database_needs_a_password_when_debug_is_off():
    env = {"SECRET_KEY": "k" * 50, "DATABASE_URL": "postgres://mminstruct@postgres:5432/mminstruct"}
    result = run_django(env, code="print(settings.DATABASES['default']['HOST'])")
    assert result.returncode != 0
    assert "without a password" in result.stderr and "POSTGRES_PASSWORD" in result.stderr
    env["DATABASE_URL"] = "postgres://mminstruct:s3cret@postgres:5432/mminstruct"
    assert run_django(env, code="print(settings.DATABASES['default']['HOST'])").stdout.strip() == "postgres"


def test_https_settings_follow_use_https():
    expression = (
        "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT, "
        "settings.SECURE_HSTS_SECONDS, settings.SECURE_PROXY_SSL_HEADER)"
    )
    on = run_django({"SECRET_KEY": "k" * 50, "USE_HTTPS": "true"}, code=expression)
    assert on.stdout.strip() == "True True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https')", on.stderr
    off = run_django(
        {"SECRET_KEY": "k" * 50}, code=expression.replace(", settings.SECURE_PROXY_SSL_HEADER", "")
    )
    assert off.stdout.strip() == "False False False 0", off.stderr


# --- in-process: the same settings as they act on requests --------------------------------------
@pytest.fixture
def https_on(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True


@pytest.mark.django_db
def test_behind_tls_http_is_redirected_and_https_gets_hsts(client, https_on, annotator):
    response = client.get("/domains/")
    assert response.status_code == 301 and response["Location"] == "https://testserver/domains/"
    client.force_login(annotator)
    secure = client.get("/domains/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.django_db
def test_login_sets_secure_cookies_behind_tls(client, https_on, annotator):
    client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    response = client.post(
        "/accounts/login/",
        {"username": annotator.username, "password": "pw-" + annotator.username},
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"] is True


@pytest.mark.django_db
def test_health_probe_needs_no_host_name_https_or_login(client, https_on, settings):
    settings.ALLOWED_HOSTS = ["studio.example.org"]
    response = client.get("/healthz/", HTTP_HOST="172.18.0.4:8000")
    assert response.status_code == 200 and json.loads(response.content) == {"status": "ok"}
    assert client.get("/domains/", HTTP_HOST="172.18.0.4:8000").status_code == 400  # the host check holds


CSP_REQUIRED = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
]


def csp_of(response) -> str:
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    return policy


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/accounts/login/", "/api/v1/images/", "/no-such-page/", "/api/schema/"])
def test_every_response_carries_the_content_security_policy(client, url):
    policy = csp_of(client.get(url))
    for directive in CSP_REQUIRED:
        assert directive in policy


@pytest.mark.django_db
def test_api_docs_are_served_from_this_site_without_inline_code(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "img-src 'self' data:" in csp_of(response)  # Swagger UI's icons; nothing else is relaxed
    assert not re.search(r"https?://", html), "the docs page must load nothing from another host"
    assert "<style" not in html and not re.search(r"<script>(?!</script>)", html)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    for source in sources:
        if source.startswith("/static/"):  # collectstatic gathers them; whitenoise serves them
            assert finders.find(source.removeprefix("/static/")), source
    script = client.get(next(s for s in sources if "script" in s and "static" not in s))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
