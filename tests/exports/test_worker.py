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

from exports.models import ExportVersion, ExportVersionEvent, VersionStatus
from exports.services.files import check_archive
from exports.services.specs import allocate_version, request_build
from exports.tasks import build_export_version

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(postgres, redis_url, tmp_path):
    """A real `celery worker` subprocess on the test database, stopped by its pid."""
    redis.Redis.from_url(redis_url).delete("celery")  # no stale task from an earlier run
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        REDIS_URL=redis_url,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        EXPORTS_ROOT=str(settings.EXPORTS_ROOT),
        LOG_LEVEL="WARNING",
    )
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mminstruct_site",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            f"--pidfile={tmp_path / 'worker.pid'}",
            "-n",
            f"exports-test-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


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
