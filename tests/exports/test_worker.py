"""The Celery path with real parts: a worker process on PostgreSQL + Redis builds what a request queued,
and a redelivered task changes nothing. Also: concurrent version allocation on PostgreSQL."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection, connections

from corpus.models import Instruction, ItemStatus
from exports.models import ExportVersion, ExportVersionEvent, VersionStatus
from exports.services.files import check_archive
from exports.services.specs import allocate_version, request_build
from exports.tasks import build_export_version

ROOT = Path(__file__).resolve().parents[2]


def start_worker(redis_url: str, tmp_path: Path, name: str, **extra_env) -> subprocess.Popen:
    """A real `celery worker` subprocess on the test database."""
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        REDIS_URL=redis_url,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        EXPORTS_ROOT=str(settings.EXPORTS_ROOT),
        LOG_LEVEL="WARNING",
        **extra_env,
    )
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - handed to the child
    command = [sys.executable, "-m", "celery", "-A", "mminstruct_site", "worker", "--pool=solo"]
    command += ["--loglevel=INFO", f"--pidfile={tmp_path / f'{name}.pid'}", "-n", f"{name}-{os.getpid()}@%h"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    """Stop a worker this test started, by its pid."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def clear_queue(redis_url: str) -> None:
    """No stale task (or unacknowledged one) from an earlier run in this Redis database."""
    redis.Redis.from_url(redis_url).delete("celery", "unacked", "unacked_index")


@pytest.fixture
def worker(postgres, redis_url, tmp_path):
    clear_queue(redis_url)
    proc = start_worker(redis_url, tmp_path, "exports-worker")
    yield proc
    stop(proc)


def wait_for(version: ExportVersion, statuses: set[str], timeout: float = 90) -> ExportVersion:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version.refresh_from_db()
        if version.status in statuses:
            return version
        time.sleep(0.3)
    raise AssertionError(f"{version} stayed {version.status}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_builds_the_queued_version_and_ignores_a_redelivery(
    worker, corpus, make_spec, researcher
):
    spec = make_spec(formats=["llava", "parquet"])
    version = request_build(spec, by=researcher)  # queued on commit (autocommit here)
    version = wait_for(version, {VersionStatus.DONE, VersionStatus.FAILED})
    assert version.status == VersionStatus.DONE, version.error
    check_archive(version, full=True)
    assert version.attempt == 1
    events = ExportVersionEvent.objects.filter(version=version).count()

    build_export_version.delay(version.pk)  # what a redelivery looks like to the worker
    time.sleep(3)
    version.refresh_from_db()
    assert version.attempt == 1 and ExportVersionEvent.objects.filter(version=version).count() == events
    check_archive(version, full=True)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_build_whose_worker_is_killed_is_redelivered_and_restarted_from_scratch(
    postgres, redis_url, tmp_path, corpus, make_spec, researcher
):
    # Enough rows that the build is still running when its worker is killed.
    images = corpus["images"]
    Instruction.objects.bulk_create(
        Instruction(
            image=images[n % len(images)],
            type="short_vqa",
            question=f"What is written on label {n}?",
            answer="a number",
            status=ItemStatus.ACCEPTED,
            options=[],
        )
        for n in range(60_000)
    )
    clear_queue(redis_url)
    first = start_worker(redis_url, tmp_path, "doomed")
    try:
        version = request_build(make_spec(formats=["llava"], image_mode="reference"), by=researcher)
        wait_for(version, {VersionStatus.BUILDING}, timeout=60)
        first.kill()  # SIGKILL mid-build: the task stays unacknowledged in Redis
        first.wait()
    finally:
        stop(first)
    version.refresh_from_db()
    assert version.status == VersionStatus.BUILDING and version.attempt == 1
    # A new worker that considers unacknowledged tasks lost after 2 s gets it again.
    second = start_worker(redis_url, tmp_path, "rescuer", CELERY_VISIBILITY_TIMEOUT="2")
    try:
        version = wait_for(version, {VersionStatus.DONE, VersionStatus.FAILED}, timeout=180)
    finally:
        stop(second)
    assert version.status == VersionStatus.DONE, version.error
    assert version.attempt == 2
    assert (
        version.counts["instructions"] == Instruction.objects.filter(status=ItemStatus.ACCEPTED).count() - 1
    )
    check_archive(version, full=True)
    notes = list(ExportVersionEvent.objects.filter(version=version).values_list("to_status", "note"))
    assert ("building", "restarted") in notes
    assert not list((Path(settings.EXPORTS_ROOT) / ".building").iterdir())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_builds_get_distinct_consecutive_version_numbers(postgres, corpus, make_spec):
    spec = make_spec(formats=["llava"])
    numbers, errors = [], []
    barrier = threading.Barrier(6)

    def allocate():
        try:
            barrier.wait()
            numbers.append(allocate_version(spec, by=None).number)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=allocate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
