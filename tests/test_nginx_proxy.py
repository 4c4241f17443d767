"""The shipped deploy/nginx.conf in front of the app, for real: Debian's nginx runs the file as it is
(only the listen address, the upstream and the two volume paths are pointed at this test) in front of
gunicorn serving the app with MEDIA_ACCEL_REDIRECT / EXPORTS_ACCEL_REDIRECT as docker-compose sets them
(not Django's live server: it serves MEDIA_URL itself, around the app). Checks that images and archives
reach a person with a role and nobody else, and that the internal locations cannot be asked for from
outside."""

import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from corpus.models import Domain, Image, Instruction, ItemStatus
from corpus.services.import_batches import stage_upload, staging_path
from corpus.services.imports import import_images, sources_from_uploads
from exports.services.build import build_version
from exports.services.specs import allocate_version, create_spec
from tests.conftest import require
from tests.corpus.factories import png_bytes
from tests.workers import database_url, wait_for

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, *, session: str | None = None, headers: dict | None = None):
    """(status, headers, body) without following redirects."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    if session:
        request.add_header("Cookie", f"sessionid={session}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    def listens() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            return False

    wait_for(listens, 30, f"something to listen on {port}", interval=0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_app(settings, tmp_path: Path, *, accel: bool, **extra_env: str) -> Iterator[str]:
    """gunicorn serving the app on the test database (as docker-compose runs web); with `accel`, with
    MEDIA_ACCEL_REDIRECT / EXPORTS_ACCEL_REDIRECT set as docker-compose sets them. Yields its URL."""
    port = free_port()
    env = dict(
        os.environ,
        DEBUG="true",
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        EXPORTS_ROOT=str(settings.EXPORTS_ROOT),
        IMPORT_STAGING_ROOT=str(settings.IMPORT_STAGING_ROOT),
        MEDIA_ACCEL_REDIRECT="/_protected/media/" if accel else "",
        EXPORTS_ACCEL_REDIRECT="/_protected/exports/" if accel else "",
        **extra_env,
    )
    log = tmp_path / f"gunicorn-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mminstruct_site.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--pid", str(tmp_path / f"gunicorn-{port}.pid")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 - handed to the child
    )
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextmanager
def running_nginx(app_url: str, settings, tmp_path: Path) -> Iterator[str]:
    """Debian's nginx with the shipped deploy/nginx.conf in front of `app_url`. Yields its URL; its access
    log (status, URI asked, URI served) is tmp_path/nginx/access.log."""
    require(Path(NGINX).exists(), "needs nginx: apt-get install nginx-light")
    shipped = (ROOT / "deploy" / "nginx.conf").read_text()
    port = free_port()
    server = (
        shipped.replace("listen 80;", f"listen 127.0.0.1:{port};")
        .replace("http://web:8000", app_url)
        .replace("/data/media/", f"{Path(settings.MEDIA_ROOT).resolve()}/")
        .replace("/data/exports/", f"{Path(settings.EXPORTS_ROOT).resolve()}/")
    )
    assert server.count(str(tmp_path)) == 2, "the shipped config no longer has the two aliases"
    run = tmp_path / "nginx"
    run.mkdir()
    (run / "nginx.conf").write_text(
        f"""
user root;
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format served '$status $request_uri -> $uri';
    access_log {run}/access.log served;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
{server}
}}
"""
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(run), "-c", str(run / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=open(run / "stderr.log", "wb"),  # noqa: SIM115 - handed to the child
    )
    try:
        wait_for_port(port, proc, run / "stderr.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def proxy(postgres, settings, tmp_path):
    require(Path(NGINX).exists(), "needs nginx: apt-get install nginx-light")
    with running_app(settings, tmp_path, accel=True) as app, running_nginx(app, settings, tmp_path) as url:
        yield url


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.mark.django_db(transaction=True)
def test_the_shipped_nginx_config_serves_stored_files_only_after_the_role_check(
    proxy, admin_user, researcher, outsider, settings
):
    settings.MEDIA_ACCEL_REDIRECT = settings.EXPORTS_ACCEL_REDIRECT = ""  # the data is made here, not served
    domain = Domain.objects.get_or_create(slug="ocr", defaults={"name": "OCR"})[0]
    summary = import_images(
        sources_from_uploads([SimpleUploadedFile("page.png", png_bytes(3, (300, 200)))]), domain=domain
    )
    image = Image.objects.get(pk=summary.imported[0].image_id)
    Instruction.objects.create(
        image=image,
        type="short_vqa",
        question="What is shown?",
        answer="a gradient",
        status=ItemStatus.ACCEPTED,
    )
    version = build_version(
        allocate_version(create_spec("via-nginx", by=researcher, formats=["llava"]), by=researcher)
    )
    batch = stage_upload([SimpleUploadedFile("staged.png", png_bytes(4))], domain=domain, by=admin_user)
    staged = next(staging_path(batch).glob("*/*"))
    researcher_session, outsider_session = session_of(researcher), session_of(outsider)

    for field, content_type in ((image.file, "image/png"), (image.thumbnail, "image/jpeg")):
        status, headers, body = fetch(proxy + field.url, session=researcher_session)
        assert status == 200 and body == Path(field.path).read_bytes()
        assert headers["Content-Type"] == content_type
        assert headers["X-Content-Type-Options"] == "nosniff" and "private" in headers["Cache-Control"]
        assert "X-Accel-Redirect" not in headers
        status, headers, _ = fetch(proxy + field.url)
        assert status == 302 and "/accounts/login/" in headers["Location"]
        assert fetch(proxy + field.url, session=outsider_session)[0] == 403
        # The internal location cannot be asked for from outside, signed in or not.
        assert fetch(f"{proxy}/_protected/media/{field.name}", session=researcher_session)[0] == 404

    download = f"{proxy}/exports/versions/{version.pk}/download/"
    status, headers, body = fetch(download, session=researcher_session)
    archive = Path(settings.EXPORTS_ROOT) / version.file_path
    assert status == 200 and body == archive.read_bytes()
    assert headers["ETag"] == f'"{version.sha256}"' and headers["X-Checksum-SHA256"] == version.sha256
    assert headers["Digest"].startswith("sha-256=")
    assert headers["Content-Disposition"] == f'attachment; filename="{archive.name}"'
    status, headers, body = fetch(download, session=researcher_session, headers={"Range": "bytes=10-19"})
    assert status == 206 and body == archive.read_bytes()[10:20]
    assert fetch(download)[0] == 302
    assert fetch(download, session=outsider_session)[0] == 403
    assert fetch(f"{proxy}/_protected/exports/{version.file_path}", session=researcher_session)[0] == 404

    # nginx sent the bytes from its internal locations (Django only answered X-Accel-Redirect).
    served = (proxy_log := Path(settings.MEDIA_ROOT).parent / "nginx" / "access.log").read_text()
    assert f"200 {image.file.url} -> /_protected/media/{image.file.name}" in served, proxy_log
    assert (
        f"206 /exports/versions/{version.pk}/download/ -> /_protected/exports/{version.file_path}" in served
    )

    relative = staged.relative_to(settings.IMPORT_STAGING_ROOT).as_posix()
    for url in (f"/media/import-staging/{batch.pk}/00000/staged.png", f"/media/{relative}"):
        assert fetch(proxy + url, session=researcher_session)[0] == 404


@pytest.mark.django_db(transaction=True)
def test_behind_a_tls_proxy_the_scheme_it_reports_reaches_django(postgres, settings, tmp_path):
    """With USE_HTTPS, a request a TLS terminator in front of nginx marked https is served, not redirected
    to itself (nginx passes the front proxy's X-Forwarded-Proto on); a plain http request is redirected."""
    with (
        running_app(settings, tmp_path, accel=True, USE_HTTPS="true", ALLOWED_HOSTS="127.0.0.1") as app,
        running_nginx(app, settings, tmp_path) as url,
    ):
        status, headers, _ = fetch(url + "/accounts/login/", headers={"X-Forwarded-Proto": "https"})
        assert status == 200, headers
        status, headers, _ = fetch(url + "/accounts/login/")
        assert status == 301 and headers["Location"].startswith("https://"), headers
