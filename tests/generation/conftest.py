"""Fixtures of the generation tests: the fake model server, endpoints pointing at it, eager Celery for
in-process runs, and real Celery worker processes for the tests whose behaviour depends on them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.roles import ALL_ROLES
from generation.models import Endpoint, EndpointKind
from generation.services import ensure_default_endpoints, ensure_default_prompts
from tests.fakes.openai_server import FakeOpenAI
from tests.workers import Workers


@pytest.fixture(autouse=True)
def _role_groups(db):
    # Transactional tests flush the database, migrations' groups included; the people fixtures need them.
    for name in ALL_ROLES:
        Group.objects.get_or_create(name=name)


@pytest.fixture(autouse=True)
def _model_key(monkeypatch):
    # The endpoints' key variable is set, as on a configured installation (a launch on an endpoint whose
    # key is not set asks for confirmation; the tests of that unset it).
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


@pytest.fixture
def fake():
    with FakeOpenAI(latency=0.01) as server:
        yield server


# The OPENAI_* variable that sets each endpoint field of the defaults (workers re-sync them at start).
FIELD_ENV = {
    "base_url": "OPENAI_BASE_URL",
    "rpm_limit": "OPENAI_RPM_LIMIT",
    "tpm_limit": "OPENAI_TPM_LIMIT",
    "max_concurrency": "OPENAI_MAX_CONCURRENCY",
    "timeout": "OPENAI_TIMEOUT",
}


def point_endpoints(base_url: str, workers: Workers | None = None, **fields) -> dict[str, Endpoint]:
    """Point the default endpoints at `base_url` (the fake server). With `workers`, their environment
    says the same, so the re-sync every worker does at start keeps it."""
    ensure_default_endpoints()
    ensure_default_prompts()
    defaults = {"rpm_limit": 100_000, "tpm_limit": 0, "max_concurrency": 8, "timeout": 3.0}
    defaults.update(fields)
    Endpoint.objects.filter(kind__in=EndpointKind.values).update(base_url=base_url, **defaults)
    if workers is not None:
        workers.env.update({FIELD_ENV[k]: str(v) for k, v in {"base_url": base_url, **defaults}.items()})
    return {e.kind: e for e in Endpoint.objects.filter(is_default=True)}


@pytest.fixture
def endpoints(fake, settings):
    settings.GENERATION_BACKOFF_BASE = 0.01
    settings.GENERATION_BACKOFF_CAP = 0.05
    return point_endpoints(fake.base_url)


@pytest.fixture
def eager():
    """Run Celery tasks inline (Celery's own eager mode) for tests of one process; real-worker tests
    below cover the broker."""
    from mminstruct_site.celery import app

    old = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = old


@pytest.fixture
def workers(workers):
    """The real-worker fixture of the whole suite (tests/conftest.py), with the endpoints' key variable
    set and short retry backoffs."""
    workers.env.update(
        OPENAI_API_KEY="test-key",
        GENERATION_BACKOFF_BASE="0.05",
        GENERATION_BACKOFF_CAP="0.5",
        GENERATION_RETRY_AFTER_CAP="1",
    )
    return workers


def unit_histories(job) -> dict[int, list[tuple[str, str]]]:
    """Each unit of the job → its status moves (from, to), in the order they were written."""
    from generation.models import UnitEvent

    histories: dict[int, list[tuple[str, str]]] = {pk: [] for pk in job.units.values_list("pk", flat=True)}
    events = UnitEvent.objects.filter(unit__job=job).order_by("id")
    for unit_id, frm, to in events.values_list("unit_id", "from_status", "to_status"):
        histories[unit_id].append((frm, to))
    return histories


def assert_one_event_per_move(job) -> dict[int, list[tuple[str, str]]]:
    """Every status move of the job and of each of its units left exactly one event: each history is an
    unbroken chain from where the row began (a job at "", a unit at pending) to where it is now. A move
    without its event breaks the chain, and so does an event without its move (a second "pending →
    running" for one claim, say). Returns the units' histories for sharper assertions."""
    from generation.models import GenerationUnit

    job.refresh_from_db()
    moves = list(job.events.order_by("id").values_list("from_status", "to_status"))
    assert moves and moves[0] == ("", "queued"), moves
    for (_, to), (frm, _) in zip(moves, moves[1:], strict=False):
        assert frm == to, f"job {job.pk}: its events do not follow each other: {moves}"
    assert moves[-1][1] == job.status, f"job {job.pk} is {job.status} but its events say {moves}"
    histories = unit_histories(job)
    statuses = dict(GenerationUnit.objects.filter(job=job).values_list("pk", "status"))
    for unit_id, history in histories.items():
        at = "pending"
        for frm, to in history:
            assert frm == at, f"unit {unit_id}: a move from {at} has no event, or an event no move: {history}"
            at = to
        assert at == statuses[unit_id], f"unit {unit_id} is {statuses[unit_id]} but its events say {history}"
    return histories
