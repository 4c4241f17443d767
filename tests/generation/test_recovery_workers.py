"""Recovery with real parts and nobody watching: real Celery worker and beat processes, PostgreSQL and
Redis. The broker's visibility timeout stays at its default (2 hours), so only the beat-driven sweep can
bring back a dead worker's work; leases, stall period and sweep interval are shrunk to seconds."""

import re
import time

import pytest
from django.db import connection
from django.db.models import Count

from corpus.models import Caption
from generation import selectors, services
from generation.models import Endpoint, GenerationJob, GenerationUnit, JobStatus, UnitStatus
from tests.corpus.factories import DomainFactory, ImageFactory
from tests.workers import wait_for

from .conftest import point_endpoints
from .test_workers import assert_no_duplicates_and_counts_add_up

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

LEASE = 4  # GENERATION_UNIT_LEASE_SECONDS
SWEEP = 1  # SWEEP_INTERVAL
# Time for the remaining units to run and for a loaded 2-core machine's scheduling, on top of the bound.
WORK_MARGIN = 12


def shrink(workers) -> None:
    workers.env.update(
        GENERATION_UNIT_LEASE_SECONDS=str(LEASE),
        SWEEP_INTERVAL=str(SWEEP),
        GENERATION_STALL_SECONDS="2",
        GENERATION_CHUNK_SIZE="10",
    )


def job_status(job) -> str:
    return GenerationJob.objects.get(pk=job.pk).status


def one_caption_per_image():
    return Caption.objects.values("image").annotate(n=Count("id")).filter(n__gt=1).count() == 0


def freed_by_sweeps(log: str) -> list[int]:
    """Unit ids the sweeps freed, from the worker log lines `generation sweep: freed {job: [ids]} …`."""
    ids = []
    for match in re.finditer(r"generation sweep: freed (\{[^}]*\})", log):
        for group in re.findall(r"\[([\d, ]*)\]", match.group(1)):
            ids += [int(x) for x in group.split(",") if x.strip()]
    return ids


def test_killed_worker_job_finishes_by_the_sweep_within_a_lease_and_an_interval(workers, fake, admin_user):
    shrink(workers)
    # Chunks do not take other chunks' units here: only the sweep can bring the dead worker's back.
    workers.env["GENERATION_STEAL_WORK"] = "false"
    fake.latency = 0.15
    point_endpoints(fake.base_url, workers, max_concurrency=4)
    ImageFactory.create_batch(60, domain=DomainFactory(slug="signs"))
    first = workers.start()
    workers.start_beat()
    job = services.launch_job(stage="captions", by=admin_user, domains=["signs"])
    wait_for(lambda: selectors.progress(job).done >= 12, 30, what="some units to finish")
    # Slow calls from here on, so the kill lands mid-unit: at 0.15 s a loaded machine could see the
    # last units finish between noticing one in flight and the kill (CI once found none running).
    fake.latency = 5.0
    time.sleep(0.5)  # the fast calls in flight end; the units running now are in slow calls
    wait_for(lambda: selectors.progress(job).running, 10, interval=0.01, what="a unit in flight")
    workers.kill(first)
    in_flight = GenerationUnit.objects.filter(job=job, status=UnitStatus.RUNNING).count()
    assert in_flight > 0  # the kill left units running with a lease that only the sweep can end
    fake.latency = 0.15
    second = workers.start()
    back = time.monotonic()
    wait_for(lambda: job_status(job) == JobStatus.DONE, LEASE + SWEEP + WORK_MARGIN, what="the job to finish")
    took = time.monotonic() - back
    progress = assert_no_duplicates_and_counts_add_up(job)
    assert progress.done == 60 and one_caption_per_image()
    assert "generation sweep: freed" in workers.log(second)
    print(f"done {took:.1f} s after the worker came back ({in_flight} units were in flight at the kill)")


def test_all_database_connections_dropped_mid_job_the_job_finishes(workers, fake, admin_user):
    """What a PostgreSQL restart does to a running worker: every connection to the database ends (the
    server itself keeps running — others use it). Twice, mid-job. The chunk carries on after
    reconnecting; the sweep is the backstop."""
    shrink(workers)
    fake.latency = 0.1
    point_endpoints(fake.base_url, workers, max_concurrency=4)
    ImageFactory.create_batch(80, domain=DomainFactory(slug="drops"))
    name = workers.start()
    workers.start_beat()
    job = services.launch_job(stage="captions", by=admin_user, domains=["drops"])
    for at_least in (10, 40):
        wait_for(lambda n=at_least: selectors.progress(job).done >= n, 30, what=f"{at_least} units")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1  # the worker's connections were there, and are gone
        dropped = time.monotonic()
    wait_for(lambda: job_status(job) == JobStatus.DONE, LEASE + SWEEP + WORK_MARGIN, what="the job to finish")
    print(f"done {time.monotonic() - dropped:.1f} s after the second drop")
    progress = assert_no_duplicates_and_counts_add_up(job)
    assert progress.done == 80 and one_caption_per_image()
    log = workers.log(name)
    assert "retrying" in log or "Retry in" in log  # the drop was seen and survived, not silently missed


def test_two_beats_do_no_double_work(workers, fake, admin_user):
    """Two beats by mistake, a worker killed mid-job: every dead unit is freed by one sweep only, no
    unit is called more than once beyond the call the dead worker had in flight, one draft per unit."""
    shrink(workers)
    fake.latency = 0.15
    point_endpoints(fake.base_url, workers, max_concurrency=4)
    ImageFactory.create_batch(50, domain=DomainFactory(slug="twice"))
    first = workers.start()
    workers.start_beat("beat-a")
    workers.start_beat("beat-b")
    job = services.launch_job(stage="captions", by=admin_user, domains=["twice"])
    wait_for(lambda: selectors.progress(job).done >= 10, 30, what="some units to finish")
    wait_for(lambda: selectors.progress(job).running, 10, interval=0.01, what="a unit in flight")
    workers.kill(first)
    in_flight = GenerationUnit.objects.filter(job=job, status=UnitStatus.RUNNING).count()
    second = workers.start()
    wait_for(lambda: job_status(job) == JobStatus.DONE, LEASE + SWEEP + WORK_MARGIN, what="the job to finish")
    progress = assert_no_duplicates_and_counts_add_up(job)
    assert progress.done == 50 and one_caption_per_image()
    assert len(fake.requests) <= 50 + in_flight
    freed = freed_by_sweeps(workers.log(second))
    assert len(freed) == len(set(freed)), f"a unit was freed twice: {freed}"
    assert set(freed) <= set(GenerationUnit.objects.filter(job=job).values_list("pk", flat=True))
    # Both beats sent sweeps (the second worker ran them all).
    for beat in ("beat-a", "beat-b"):
        assert "generation.sweep" in workers.log(beat)


def test_a_worker_re_syncs_the_default_endpoints_from_its_environment_at_start(workers, fake):
    """Restarting with other OPENAI_* variables takes effect without anyone running a command."""
    point_endpoints(fake.base_url, workers)
    workers.env.update(OPENAI_TEXT_MODEL="qwen2.5-72b-instruct", OPENAI_RPM_LIMIT="77")
    Endpoint.objects.filter(name="default-text").update(last_test_ok=False, last_test_error="HTTP 404")
    workers.start()
    text = Endpoint.objects.get(name="default-text")
    assert (text.model, text.rpm_limit, text.base_url) == ("qwen2.5-72b-instruct", 77, fake.base_url)
    assert text.last_test_ok is None  # the model changed: the old test result no longer applies
