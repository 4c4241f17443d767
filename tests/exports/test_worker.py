"""The Celery path with real parts: a worker process on PostgreSQL + Redis builds what a request queued,
and a redelivered task changes nothing; a worker killed (SIGKILL) or frozen (SIGSTOP) mid-build, with
Celery beat and the exports sweep restarting or failing the build; a task lost before any worker took it,
sent again by the sweep. Also: concurrent version allocation on PostgreSQL."""

import itertools
import os
import signal
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from corpus.models import Instruction, ItemStatus
from exports.models import ExportVersion, ExportVersionEvent, VersionStatus
from exports.selectors import check_archive
from exports.services.build import build_version
from exports.services.specs import allocate_version, request_build
from exports.tasks import build_export_version
from tests.workers import wait_for


def wait_for_status(version: ExportVersion, statuses: set[str], timeout: float = 90) -> ExportVersion:
    def reached():
        version.refresh_from_db()
        return version.status in statuses

    wait_for(reached, timeout, f"{version} to become {' or '.join(sorted(statuses))}", interval=0.3)
    return version


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_builds_the_queued_version_and_ignores_a_redelivery(
    workers, corpus, make_spec, researcher
):
    workers.start("exports-worker")
    spec = make_spec(formats=["llava", "parquet"])
    version = request_build(spec, by=researcher)  # queued on commit (autocommit here)
    version = wait_for_status(version, {VersionStatus.DONE, VersionStatus.FAILED})
    assert version.status == VersionStatus.DONE, version.error
    check_archive(version, full=True)
    assert version.attempt == 1
    events = ExportVersionEvent.objects.filter(version=version).count()

    redelivery = build_export_version.delay(version.pk)  # what a redelivery looks like to the worker
    workers.wait_for_log(
        "exports-worker", f"[{redelivery.id}] succeeded", 60, what="the redelivery to be run"
    )
    version.refresh_from_db()
    assert version.attempt == 1 and ExportVersionEvent.objects.filter(version=version).count() == events
    check_archive(version, full=True)


# Short clocks for the recovery tests: a heartbeat every 0.5 s, silent for 4 s = dead, a sweep every 2 s.
RECOVERY_ENV = {"EXPORTS_HEARTBEAT_SECONDS": "0.5", "EXPORTS_HEARTBEAT_TIMEOUT": "4", "SWEEP_INTERVAL": "2"}
HEARTBEAT_TIMEOUT, SWEEP_INTERVAL = 4, 2


def add_instructions(corpus, n: int) -> None:
    """Enough rows that a build runs for several seconds (the worker is stopped mid-build)."""
    ids = [image.pk for image in corpus["images"]]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO corpus_instruction (status, origin, model_name, version, reason, created_at,
                updated_at, type, question, options, answer, image_id, checked_digest)
            SELECT 'accepted', 'model', '', 1, '', now(), now(), 'short_vqa',
                'What is written on label ' || g || '?', '[]'::jsonb, 'a number', (%s::bigint[])[1 + g %% %s], ''
            FROM generate_series(1, %s) AS g
            """,
            [ids, len(ids), n],
        )


def start_doomed_build(workers, spec, name: str) -> ExportVersion:
    """The build, sent to a worker of its own (queue `doomed`), while the rescuer and beat consume the
    default queue: the first attempt runs where the test will kill or freeze it, its restart elsewhere."""
    workers.start(name, queues="doomed")
    version = allocate_version(spec, by=None)
    build_export_version.apply_async([version.pk], queue="doomed")
    return version


def wait_until_beating(version: ExportVersion, timeout: float = 60) -> ExportVersion:
    """The build runs in the worker and its heartbeat thread has moved heartbeat_at since the start."""
    version = wait_for_status(version, {VersionStatus.BUILDING}, timeout=timeout)

    def beating():
        version.refresh_from_db()
        return version.status == VersionStatus.BUILDING and version.heartbeat_at > version.started_at

    wait_for(beating, timeout, f"a heartbeat of {version}", interval=0.1)
    return version


def recovery_moves(version: ExportVersion) -> list[ExportVersionEvent]:
    return list(
        ExportVersionEvent.objects.filter(version=version, from_status=VersionStatus.BUILDING).exclude(
            to_status=VersionStatus.DONE
        )
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("max_attempts", [3, 1], ids=["restarted", "failed-after-the-last-attempt"])
def test_a_build_whose_worker_is_killed_is_restarted_by_the_sweep_or_failed_with_the_reason(
    workers, corpus, make_spec, researcher, max_attempts
):
    add_instructions(corpus, 150_000)
    workers.env.update(RECOVERY_ENV, EXPORTS_BUILD_MAX_ATTEMPTS=str(max_attempts))
    spec = make_spec(formats=["llava", "sharegpt"], image_mode="reference")
    # The rescuer and two beats (one too many, by mistake) are up before the build starts.
    for n in (1, 2):
        workers.start_beat(f"beat-{n}", wait=False)
    workers.start("rescuer")
    version = start_doomed_build(workers, spec, "doomed")
    version = wait_until_beating(version)
    workers.kill("doomed")  # SIGKILL mid-build: no clean-up, the task stays unacknowledged in Redis
    killed_at = timezone.now()
    assert ExportVersion.objects.get(pk=version.pk).status == VersionStatus.BUILDING
    assert list((Path(settings.EXPORTS_ROOT) / ".building").iterdir())  # the dead attempt's folder
    expected = VersionStatus.DONE if max_attempts > 1 else VersionStatus.FAILED
    version = wait_for_status(version, {expected}, timeout=180)
    workers.stop_all()

    recovered = recovery_moves(version)
    assert len(recovered) == 1, "two beats, one restart"  # and never a second one
    bound = (
        HEARTBEAT_TIMEOUT + SWEEP_INTERVAL + 2
    )  # + 2 s for the task's trip through Redis on a busy machine
    assert (recovered[0].at - killed_at).total_seconds() <= bound
    assert not list((Path(settings.EXPORTS_ROOT) / ".building").iterdir())
    if expected == VersionStatus.FAILED:
        assert recovered[0].to_status == VersionStatus.FAILED
        assert "Gave up after 1 attempt:" in version.error and "no heartbeat" in version.error
        assert not version.file_path and not version.sha256
        return
    assert recovered[0].to_status == VersionStatus.QUEUED and version.attempt == 2
    check_archive(version, full=True)
    # Identical to a build that was never interrupted (the same spec on the same rows, built here).
    clean = build_version(allocate_version(spec, by=None))
    assert clean.status == VersionStatus.DONE and clean.sha256 == version.sha256
    assert (
        version.counts["instructions"] == Instruction.objects.filter(status=ItemStatus.ACCEPTED).count() - 1
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_frozen_worker_that_wakes_after_the_restart_does_not_publish_over_it(
    workers, corpus, make_spec, researcher
):
    add_instructions(corpus, 150_000)
    workers.env.update(RECOVERY_ENV)
    spec = make_spec(formats=["llava", "sharegpt"], image_mode="reference")
    workers.start_beat("beat", wait=False)
    workers.start("rescuer")
    version = start_doomed_build(workers, spec, "sleeper")
    wait_until_beating(version)
    sleeper = workers.proc("sleeper")
    os.kill(sleeper.pid, signal.SIGSTOP)  # frozen, not dead: a long GC pause, a suspended VM
    version = wait_for_status(version, {VersionStatus.DONE, VersionStatus.FAILED}, timeout=180)
    assert version.status == VersionStatus.DONE and version.attempt == 2, version.error
    moves_before = list(ExportVersionEvent.objects.filter(version=version).values_list("id", flat=True))
    os.kill(sleeper.pid, signal.SIGCONT)
    wait_for(
        lambda: (
            "no longer holds it" in workers.log("sleeper") or "lost the version" in workers.log("sleeper")
        ),
        60,
        "the woken worker to give up its attempt",
        interval=0.3,
    )
    workers.stop_all()
    after = ExportVersion.objects.get(pk=version.pk)
    assert (after.status, after.attempt, after.sha256) == (VersionStatus.DONE, 2, version.sha256)
    assert (
        list(ExportVersionEvent.objects.filter(version=version).values_list("id", flat=True)) == moves_before
    )
    check_archive(after, full=True)
    assert not list((Path(settings.EXPORTS_ROOT) / ".building").iterdir())


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_version_whose_task_was_lost_is_built_once_the_sweep_sends_it_again(workers, corpus, make_spec):
    workers.env.update(EXPORTS_QUEUED_TIMEOUT="4", SWEEP_INTERVAL="1")
    # Committed and queued, but its task never reaches the broker: the crash between commit and send.
    version = allocate_version(make_spec(formats=["llava"]), by=None)
    workers.start("worker")
    for n in (1, 2):  # one beat too many
        workers.start_beat(f"beat-{n}")
    version = wait_for_status(version, {VersionStatus.DONE, VersionStatus.FAILED}, timeout=120)
    assert version.status == VersionStatus.DONE and version.attempt == 1, version.error
    check_archive(version, full=True)
    events = list(ExportVersionEvent.objects.filter(version=version))
    resent = [e.at for e in events if (e.from_status, e.to_status) == ("queued", "queued")]
    assert resent and (resent[0] - version.created_at).total_seconds() >= 4
    # Two beats, yet never two sends within one timeout (a busy machine may need a second period; the
    # event's clock runs a few ms after the sweep's).
    assert all((b - a).total_seconds() > 3.5 for a, b in itertools.pairwise(resent))
    assert [e.to_status for e in events if e.from_status != "queued" or e.to_status != "queued"] == [
        "queued",
        "building",
        "done",
    ]


@pytest.mark.django_db(transaction=True)
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
