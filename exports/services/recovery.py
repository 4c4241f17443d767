"""Builds whose worker died: the heartbeat a running build writes, and the sweep that restarts or fails
a build whose heartbeat went silent.

A build holds its version by (status `building`, attempt n). While it runs, a thread moves the row's
`heartbeat_at` every EXPORTS_HEARTBEAT_SECONDS — on its own database connection, so the build's long
snapshot transaction does not hide it. When a worker is killed the heartbeat stops; once it is older than
EXPORTS_HEARTBEAT_TIMEOUT the sweep (Celery beat, `exports.sweep`) moves the version
building → queued and queues it again — its next start is attempt n+1, from scratch — or, when it was
started EXPORTS_BUILD_MAX_ATTEMPTS times already, building → failed with the reason. Either way the dead
attempt's work folder is removed.

Every move is `specs.transition` (compare-and-swap on status, attempt *and* the stale heartbeat, with
its event row): of two sweeps (two beats by mistake) one wins and the other changes nothing; a worker
that was only slow and wakes up later holds attempt n, so it can no longer publish (nor fail) a version
that moved on — and its own heartbeat tells it so, and it stops.
"""

import datetime
import logging
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from exports.models import ExportVersion, VersionStatus

from . import progress
from .specs import transition

log = logging.getLogger(__name__)

_WORKDIR = re.compile(r"^(\d+)-(\d+)$")


def building_root() -> Path:
    return Path(settings.EXPORTS_ROOT) / ".building"


def workdir_of(version_id: int, attempt: int) -> Path:
    return building_root() / f"{version_id}-{attempt}"


def _cutoff(now: datetime.datetime | None = None) -> datetime.datetime:
    return (now or timezone.now()) - datetime.timedelta(seconds=settings.EXPORTS_HEARTBEAT_TIMEOUT)


def _stale(cutoff: datetime.datetime) -> Q:
    """The heartbeat is older than `cutoff` (a row from before heartbeats: its start is)."""
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)


def is_stale(version: ExportVersion, now: datetime.datetime | None = None) -> bool:
    beat = version.heartbeat_at or version.started_at
    return version.status == VersionStatus.BUILDING and (beat is None or beat < _cutoff(now))


class BuildSuperseded(Exception):
    """This attempt no longer holds its version: the sweep restarted or failed it while we were silent."""


class Heartbeat:
    """While the build runs: move `heartbeat_at` of (version, attempt) every `every` seconds from a thread.
    `lost` is set once the row no longer holds this attempt (the build should stop: it cannot publish)."""

    def __init__(self, version: ExportVersion, *, every: float | None = None):
        self.version_id = version.pk
        self.attempt = version.attempt
        self.every = every if every is not None else settings.EXPORTS_HEARTBEAT_SECONDS
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        moved = ExportVersion.objects.filter(
            pk=self.version_id, status=VersionStatus.BUILDING, attempt=self.attempt
        ).update(heartbeat_at=timezone.now())
        if not moved:
            self.lost.set()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    self.beat()
                except DatabaseError:  # a restarting database: try again next time, the timeout is long
                    log.warning("export %s: heartbeat failed", self.version_id, exc_info=True)
                    connection.close()
                if self.lost.is_set():
                    return
        finally:
            connections.close_all()  # this thread's connections only

    def start(self) -> "Heartbeat":
        # Inside an outer transaction (tests) nobody else sees the building row: nothing to beat for.
        if not connection.in_atomic_block:
            self._thread = threading.Thread(
                target=self._run, name=f"export-{self.version_id}-heartbeat", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "Heartbeat":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def recover_build(version: ExportVersion, *, now: datetime.datetime | None = None) -> str | None:
    """Restart or fail `version` if it is building with a heartbeat older than EXPORTS_HEARTBEAT_TIMEOUT,
    and remove the dead attempt's work folder. Returns "restarted", "failed" or None (nothing to do, or
    another sweep won). Idempotent; compare-and-swap on status, attempt and the stale heartbeat."""
    version = ExportVersion.objects.select_related("spec").get(pk=version.pk)
    now = now or timezone.now()
    if not is_stale(version, now):
        return None
    attempt = version.attempt
    silent = now - (version.heartbeat_at or version.started_at or now)
    why = f"no heartbeat from the worker of attempt {attempt} for {silent.total_seconds():.0f} s"
    with transaction.atomic():
        if attempt >= settings.EXPORTS_BUILD_MAX_ATTEMPTS:
            outcome = "failed"
            won = transition(
                version,
                VersionStatus.FAILED,
                note=f"{why}; gave up after {attempt} attempt{'s' if attempt > 1 else ''}",
                expected_attempt=attempt,
                when=_stale(_cutoff(now)),
                error=(
                    f"Gave up after {attempt} attempt{'s' if attempt > 1 else ''}: the worker building it "
                    f"died or was killed ({why}); EXPORTS_BUILD_MAX_ATTEMPTS is "
                    f"{settings.EXPORTS_BUILD_MAX_ATTEMPTS}. Build the export again once the workers are "
                    "healthy."
                ),
            )
        else:
            outcome = "restarted"
            won = transition(
                version,
                VersionStatus.QUEUED,
                note=f"{why}; queued again for attempt {attempt + 1}",
                expected_attempt=attempt,
                when=_stale(_cutoff(now)),
            )
            if won:
                from exports.tasks import build_export_version  # tasks import the services

                build_export_version.delay_on_commit(version.pk)
    if not won:
        return None
    log.warning("export %s attempt %s: %s; %s", version, attempt, why, outcome)
    shutil.rmtree(workdir_of(version.pk, attempt), ignore_errors=True)
    progress.clear(version.pk)
    return outcome


@dataclass
class SweepResult:
    restarted: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    folders_removed: list[str] = field(default_factory=list)


def sweep_builds(*, now: datetime.datetime | None = None) -> SweepResult:
    """Restart or fail every build whose worker went silent, then remove work folders and progress files
    that no running attempt owns. Idempotent and safe with two sweeps at once (compare-and-swap)."""
    now = now or timezone.now()
    result = SweepResult()
    # Folders are listed before the rows are read: a folder made after this listing belongs to an attempt
    # whose start committed before it was made, so no live attempt's folder is taken for a leftover.
    root = building_root()
    folders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    progress_files = list((Path(settings.EXPORTS_ROOT) / ".progress").glob("*.json"))

    stale = ExportVersion.objects.filter(Q(status=VersionStatus.BUILDING) & _stale(_cutoff(now)))
    for version in stale.order_by("pk"):
        outcome = recover_build(version, now=now)
        if outcome == "restarted":
            result.restarted.append(version.pk)
        elif outcome == "failed":
            result.failed.append(version.pk)

    parsed = {p: _WORKDIR.match(p.name) for p in folders}
    ids = {int(m.group(1)) for m in parsed.values() if m}
    ids |= {int(p.stem) for p in progress_files if p.stem.isdigit()}
    live = dict(
        ExportVersion.objects.filter(pk__in=ids, status=VersionStatus.BUILDING).values_list("pk", "attempt")
    )
    for folder, match in parsed.items():
        if not match or live.get(int(match.group(1))) == int(match.group(2)):
            continue  # not a work folder by its name, or the running attempt's own
        shutil.rmtree(folder, ignore_errors=True)
        result.folders_removed.append(folder.name)
    for path in progress_files:
        if path.stem.isdigit() and int(path.stem) not in live:
            path.unlink(missing_ok=True)
    if result.restarted or result.failed or result.folders_removed:
        log.info(
            "exports sweep: restarted %s, failed %s, removed work folders %s",
            result.restarted,
            result.failed,
            result.folders_removed,
        )
    return result
