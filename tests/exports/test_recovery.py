"""Builds whose worker died: the sweep restarts (attempt n+1) or fails a build whose heartbeat went silent,
removes its work folder, and never does it twice; versions whose task was lost: the sweep sends it again,
once — here through the service and the task function; the real worker killed with SIGKILL (and frozen
with SIGSTOP), and a task lost before any worker took it, are in test_worker.py."""

import datetime
import threading
import time
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from corpus.transitions import transition
from exports.models import ExportVersion, ExportVersionEvent, VersionStatus
from exports.selectors import check_archive
from exports.services.build import build_version, start_attempt
from exports.services.recovery import Heartbeat, sweep_builds, workdir_of
from exports.services.specs import allocate_version
from exports.tasks import sweep


def started_then_silent(
    spec, settings, *, attempts: int = 1, silent_for: float | None = None
) -> ExportVersion:
    """A version whose worker started attempt `attempts`, made a work folder, and then went silent."""
    version = allocate_version(spec, by=None)
    for n in range(attempts):
        if n:
            transition(version, "status", VersionStatus.QUEUED, note="test: worker died")
        start_attempt(version)
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
    # (With the expectation the build itself sets: its own attempt still holds the row.)
    assert (
        transition(late, "status", VersionStatus.DONE, expect={"attempt": 1}, fields={"sha256": "0" * 64})
        is False
    )
    assert (
        transition(late, "status", VersionStatus.FAILED, expect={"attempt": 1}, fields={"error": "late"})
        is False
    )
    # Its heartbeat says it no longer holds the version.
    heartbeat = Heartbeat(late)
    heartbeat.beat()
    assert heartbeat.lost.is_set()
    rebuilt.refresh_from_db()
    assert rebuilt.sha256 != "0" * 64 and rebuilt.error == "" and moves(version) == before
    check_archive(rebuilt, full=True)


def test_a_worker_that_wakes_while_its_restart_builds_cannot_publish_over_it(corpus, make_spec, settings):
    version = started_then_silent(make_spec(formats=["llava"]), settings)
    late = ExportVersion.objects.get(pk=version.pk)  # building, attempt 1
    sweep_builds()
    version = ExportVersion.objects.get(pk=version.pk)  # queued, attempt 1, as the next worker reads it
    assert start_attempt(version) and version.attempt == 2  # the restart runs: building again
    before = moves(version)
    # The row is `building` as the late worker saw it: only its attempt tells the two apart.
    won = transition(late, "status", VersionStatus.DONE, expect={"attempt": 1}, fields={"sha256": "0" * 64})
    assert won is False
    assert transition(late, "status", VersionStatus.FAILED, expect={"attempt": 1}) is False
    heartbeat = Heartbeat(late)
    heartbeat.beat()
    assert heartbeat.lost.is_set()
    after = ExportVersion.objects.get(pk=version.pk)
    assert (after.status, after.attempt, after.sha256) == (VersionStatus.BUILDING, 2, "")
    assert moves(version) == before


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
    start_attempt(version)
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
    transition(version, "status", VersionStatus.FAILED, note="test: ended")
    with Heartbeat(version, every=0.05) as heartbeat:
        assert heartbeat.lost.wait(10)  # the row is not building any more: the beat says so


# --- versions whose task was lost ---------------------------------------------------------------


def queued_ago(spec, seconds: float) -> ExportVersion:
    """A version allocated `seconds` ago whose task never reached a worker (none was sent here)."""
    version = allocate_version(spec, by=None)
    ExportVersion.objects.filter(pk=version.pk).update(
        queued_at=timezone.now() - datetime.timedelta(seconds=seconds)
    )
    version.refresh_from_db()
    return version


def test_a_version_queued_too_long_gets_its_task_sent_again_once(
    corpus, make_spec, settings, django_capture_on_commit_callbacks
):
    settings.EXPORTS_QUEUED_TIMEOUT = 600
    spec = make_spec(formats=["llava"])
    lost = queued_ago(spec, 601)
    waiting = queued_ago(spec, 599)  # still within the time a busy queue may take
    with django_capture_on_commit_callbacks(execute=False) as sent:
        result = sweep_builds()
    assert result.resent == [lost.pk] and not result.restarted and not result.failed
    assert len(sent) == 1  # the build task, after commit
    lost.refresh_from_db()
    assert lost.status == VersionStatus.QUEUED and lost.attempt == 0
    assert lost.queued_at > timezone.now() - datetime.timedelta(seconds=60)
    assert moves(lost) == [("", "queued"), ("queued", "queued")]
    event = ExportVersionEvent.objects.filter(version=lost).last()
    assert "no worker took it for 601 s" in event.note and "sent again" in event.note
    assert moves(waiting) == [("", "queued")]

    with django_capture_on_commit_callbacks(execute=False) as sent_again:
        assert sweep_builds().resent == []  # the next beat: queued again just now, nothing to do
    assert sent_again == [] and moves(lost) == [("", "queued"), ("queued", "queued")]

    built = build_version(lost)  # the task that was sent again
    assert (built.status, built.attempt) == (VersionStatus.DONE, 1)
    check_archive(built, full=True)


def test_a_slow_original_task_and_the_one_sent_again_build_the_version_once(corpus, make_spec, settings):
    lost = queued_ago(make_spec(formats=["llava"]), settings.EXPORTS_QUEUED_TIMEOUT + 1)
    assert sweep_builds().resent == [lost.pk]
    first = build_version(lost)  # the original message, only slow after all
    second = build_version(lost)  # the one the sweep sent
    assert (second.status, second.attempt, second.sha256) == (VersionStatus.DONE, 1, first.sha256)
    assert [to for _, to in moves(lost)] == ["queued", "queued", "building", "done"]


def test_a_version_queued_before_queued_at_existed_counts_from_its_creation(corpus, make_spec, settings):
    version = allocate_version(make_spec(formats=["llava"]), by=None)
    ExportVersion.objects.filter(pk=version.pk).update(
        queued_at=None, created_at=timezone.now() - datetime.timedelta(hours=2)
    )
    assert sweep_builds().resent == [version.pk]
    assert ExportVersion.objects.get(pk=version.pk).queued_at is not None


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_send_a_lost_task_once(postgres, corpus, make_spec, settings):
    lost = queued_ago(make_spec(formats=["llava"]), settings.EXPORTS_QUEUED_TIMEOUT + 5)
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
    assert sum(len(r.resent) for r in results) == 1
    assert moves(lost).count(("queued", "queued")) == 1
