"""Schemathesis against a live server over /api/schema/, as an admin with a token: every operation is
fuzzed from the published schema (examples, boundary values, random and invalid inputs) and each response
must be no server error, a status code the schema documents, and a body and content type that match it.

Bounded: a fixed seed and a fixed number of examples per operation (about two minutes on the 2-core VM).
The run queues no real work: Celery publishes to an in-memory broker during the test, and the server
may not open a connection to anything but this machine (a fuzzed endpoint URL must never be called).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from corpus.models import ItemStatus
from corpus.rules import InstructionType
from generation.services import ensure_default_endpoints, ensure_default_prompts
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory

pytestmark = [pytest.mark.api_fuzz, pytest.mark.django_db(transaction=True)]

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"
MAX_EXAMPLES = 8
SEED = 20261130
ST = Path(sys.executable).with_name("st")


@pytest.fixture
def loopback_only(monkeypatch):
    """The live server runs in this process: refuse any connection it would open to another host."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def is_local(host) -> bool:
        return str(host) in ("localhost", "::1") or str(host).startswith("127.")

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_local(host):
            raise socket.gaierror(f"test: no lookups of {host!r} (loopback only)")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            raise ConnectionRefusedError(f"test: no connections to {address!r} (loopback only)")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def no_delayed_acks(monkeypatch):
    """The live server writes a response's headers and body in separate small sends; with Nagle's algorithm
    on, each keep-alive response then waits for the client's delayed ACK (~40 ms): most of the run's time."""
    from django.core.servers.basehttp import WSGIRequestHandler

    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)


@pytest.fixture
def broker_in_memory():
    """Job launches and export builds publish their tasks to memory, not to the suite's broker (where a
    later test's worker would pick them up)."""
    from mminstruct_site.celery import app

    saved = app.conf.broker_url, app.conf.broker_transport_options, app._pool, app.amqp._producer_pool
    app.conf.broker_url, app.conf.broker_transport_options = "memory://", {}
    app._pool = app.amqp._producer_pool = None
    yield
    app.conf.broker_url, app.conf.broker_transport_options, app._pool, app.amqp._producer_pool = saved


@pytest.fixture
def generous_rates(settings):
    """The fuzzer sends thousands of requests: the throttles (tested in test_throttling.py) stay out of it."""
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {scope: "1000000/minute" for scope in rest["DEFAULT_THROTTLE_RATES"]}
    settings.REST_FRAMEWORK = rest


def corpus_rows():
    """A little of everything, so detail routes and filters meet real rows."""
    ensure_default_endpoints()
    ensure_default_prompts()
    domain = DomainFactory(slug="fuzz", name="Fuzz")
    for image in ImageFactory.create_batch(3, domain=domain):
        CaptionFactory(image=image)
        for kind in InstructionType:
            InstructionFactory(image=image, type=kind, status=ItemStatus.DRAFT)


def run_schemathesis(base_url: str, token: str, report: Path) -> subprocess.CompletedProcess:
    # No cache: schemathesis would otherwise keep a .schemathesis/ folder in the working tree and replay
    # earlier runs' failures, so a run would depend on the runs before it. No requests with methods an
    # operation does not have: they serve only the unsupported_method check, which is not asked for.
    config = report.with_name("schemathesis.toml")
    config.write_text("[cache]\nenabled = false\n\n[phases.coverage]\nunexpected-methods = []\n")
    command = [
        str(ST), "--config-file", str(config), "run", f"{base_url}/api/schema/",
        "--header", f"Authorization: Token {token}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "30",
        # Django's test server (wsgiref) trusts Content-Length to frame a request: a fuzzed request whose
        # body runs past it leaves bytes that the server then reads as the next request on that keep-alive
        # connection (and answers in HTTP/0.9). A retry on a fresh connection tests the request itself.
        "--request-retries", "2",
        "--suppress-health-check", "all",
        "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP_PROXY", "HTTPS_PROXY"))}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def test_api_has_no_server_errors_no_schema_violations_and_no_undocumented_codes(
    live_server, admin_user, loopback_only, no_delayed_acks, broker_in_memory, generous_rates, tmp_path
):
    corpus_rows()
    token = Token.objects.create(user=admin_user).key
    report = tmp_path / "schemathesis.json"
    result = run_schemathesis(live_server.url, token, report)
    (tmp_path / "schemathesis.log").write_text(result.stdout + result.stderr)
    summary = result.stdout[-6000:] + result.stderr[-2000:]
    assert report.exists(), summary
    run = json.loads(report.read_text())
    assert run["complete"] and not run["errors"], summary
    assert run["operations"]["tested"] == run["operations"]["total"] > 40, run["operations"]
    found = sorted({(f["code"], op) for f in run["failures"] for op in f["operations"]})
    # (ST101 server error, ST103 undocumented status code, ST108 response violates the schema.)
    assert not found, f"schemathesis failures: {found}\n{summary}"
    assert result.returncode == 0, summary
