"""Builds whose worker died: the sweep restarts (attempt n+1) or fails a build whose heartbeat went silent,
removes its work folder, and never does it twice — here through the service and the task function; the
real worker killed with SIGKILL (and frozen with SIGSTOP) is in test_worker.py."""

import datetime
import threading
import time
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from exports.models import ExportVersion, ExportVersionEvent, VersionStatus
from exports.services.build import build_version
from exports.services.files import check_archive
from exports.services.recovery import Heartbeat, sweep_builds, workdir_of
from exports.services.specs import allocate_version, transition
from exports.tasks import sweep


def started_then_silent(
    spec, settings, *, attempts: int = 1, silent_for: float | None = None
) -> ExportVersion:
    """A version whose worker started attempt `attempts`, made a work folder, and then went silent."""
    version = allocate_version(spec, by=None)
    for n in range(attempts):
        if n:
            transition(version, VersionStatus.QUEUED, note="test: worker died")
        transition(version, VersionStatus.BUILDING, note="test: started")
    folder = workdir_of(version.pk, version.attempt)
    folder.mkdir(parents=True)
    (folder / "index.part").write_bytes(b"x" * 1000)
    silent = silent_for if silent_for is not None else settings.EXPORTS_HEARTBEAT_TIMEOUT + 5
    ExportVersion.objects.filter(pk=version.pk).update(
        heartbeat_at=timezone.now() - datetime.timedelta(seconds=silent)
    )
    version.refresh_from_db()
    return version


def moves(version) -> list[tuple[str, str]]:
    return list(ExportVersionEvent.objects.filter(version=version).values_list("from_status", "to_status"))


def test_the_sweep_queues_a_silent_build_again_removes_its_folder_and_the_next_start_is_attempt_two(
    corpus, make_spec, settings, django_capture_on_commit_callbacks
):
    version = started_then_silent(make_spec(formats=["llava"]), settings)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        result = sweep_builds()
    assert result.restarted == [version.pk] and not result.failed
    assert len(queued) == 1  # the build task, sent after commit
    version.refresh_from_db()
    assert (version.status, version.attempt) == (VersionStatus.QUEUED, 1)
    assert not workdir_of(version.pk, 1).exists()
    event = ExportVersionEvent.objects.filter(version=version).last()
    assert (event.from_status, event.to_status) == ("building", "queued")
    assert "no heartbeat" in event.note and "attempt 2" in event.note

    built = build_version(version)  # the queued task
    assert (built.status, built.attempt) == (VersionStatus.DONE, 2)
    check_archive(built, full=True)
    assert not list(Path(settings.EXPORTS_ROOT, ".building").iterdir())


def test_a_build_with_a_fresh_heartbeat_is_left_alone(corpus, make_spec, settings):
    version = started_then_silent(
        make_spec(formats=["llava"]), settings, silent_for=settings.EXPORTS_HEARTBEAT_TIMEOUT - 5
    )
    assert sweep_builds().restarted == []
    version.refresh_from_db()
    assert (version.status, version.attempt) == (VersionStatus.BUILDING, 1)
    assert workdir_of(version.pk, 1).exists()  # the live attempt's folder stays


def test_after_the_last_attempt_the_sweep_fails_the_version_with_the_reason(corpus, make_spec, settings):
    settings.EXPORTS_BUILD_MAX_ATTEMPTS = 2
    version = started_then_silent(make_spec(formats=["llava"]), settings, attempts=2)
    result = sweep_builds()
    assert result.failed == [version.pk] and not result.restarted
    version.refresh_from_db()
    assert version.status == VersionStatus.FAILED and version.finished_at is not None
    assert "Gave up after 2 attempts" in version.error and "EXPORTS_BUILD_MAX_ATTEMPTS" in version.error
    assert not version.file_path and not version.sha256  # never a done version without its bytes
    assert moves(version)[-1] == ("building", "failed")
    assert not workdir_of(version.pk, 2).exists()
    assert sweep_builds().failed == []  # idempotent: nothing left to do
    assert moves(version)[-1] == ("building", "failed")


def test_the_sweep_task_removes_work_folders_no_running_attempt_owns(corpus, make_spec, settings):
    spec = make_spec(formats=["llava"])
    done = build_version(allocate_version(spec, by=None))
    live = started_then_silent(spec, settings, silent_for=0)
    leftovers = [workdir_of(done.pk, 1), workdir_of(live.pk, 0), workdir_of(999_999, 3)]
    for folder in leftovers:
        folder.mkdir(parents=True)
    progress_file = Path(settings.EXPORTS_ROOT, ".progress", f"{done.pk}.json")
    progress_file.write_text('{"done": 1, "total": 1}')

    sweep()  # the task beat runs

    assert not any(folder.exists() for folder in leftovers)
    assert not progress_file.exists()
    assert workdir_of(live.pk, 1).exists()
    check_archive(ExportVersion.objects.get(pk=done.pk), full=True)


def test_a_worker_that_wakes_after_the_restart_can_neither_publish_nor_fail_the_version(
    corpus, make_spec, settings
):
    version = started_then_silent(make_spec(formats=["llava"]), settings)
    late = ExportVersion.objects.get(pk=version.pk)  # what the first worker holds: building, attempt 1
    sweep_builds()
    rebuilt = build_version(version)
    assert (rebuilt.status, rebuilt.attempt) == (VersionStatus.DONE, 2)
    before = moves(version)
    # The first worker wakes up and tries to finish attempt 1 either way.
    assert transition(late, VersionStatus.DONE, expected_attempt=1, sha256="0" * 64) is False
    assert transition(late, VersionStatus.FAILED, expected_attempt=1, error="late") is False
    # Its heartbeat says it no longer holds the version.
    heartbeat = Heartbeat(late)
    heartbeat.beat()
    assert heartbeat.lost.is_set()
    rebuilt.refresh_from_db()
    assert rebuilt.sha256 != "0" * 64 and rebuilt.error == "" and moves(version) == before
    check_archive(rebuilt, full=True)


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_restart_a_silent_build_once(postgres, corpus, make_spec, settings):
    version = started_then_silent(make_spec(formats=["llava"]), settings)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def one_sweep():
        try:
            barrier.wait()
            results.append(sweep_builds())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one_sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(len(r.restarted) for r in results) == 1
    assert moves(version).count(("building", "queued")) == 1
    version.refresh_from_db()
    assert (version.status, version.attempt) == (VersionStatus.QUEUED, 1)


@pytest.mark.django_db(transaction=True)
def test_a_running_build_moves_its_heartbeat_and_stops_beating_when_it_ends(corpus, make_spec, settings):
    version = allocate_version(make_spec(formats=["llava"]), by=None)
    transition(version, VersionStatus.BUILDING)
    ExportVersion.objects.filter(pk=version.pk).update(
        heartbeat_at=timezone.now() - datetime.timedelta(hours=1)
    )
    version.refresh_from_db()
    with Heartbeat(version, every=0.05) as heartbeat:
        deadline = timezone.now() + datetime.timedelta(seconds=10)
        while timezone.now() < deadline:
            beat = ExportVersion.objects.values_list("heartbeat_at", flat=True).get(pk=version.pk)
            if beat > timezone.now() - datetime.timedelta(seconds=5):
                break
            time.sleep(0.02)
        assert beat > timezone.now() - datetime.timedelta(seconds=5)
    assert not heartbeat.lost.is_set()
    transition(version, VersionStatus.FAILED, note="test: ended")
    with Heartbeat(version, every=0.05) as heartbeat:
        assert heartbeat.lost.wait(10)  # the row is not building any more: the beat says so
