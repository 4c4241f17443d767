"""Builds whose worker died, and versions whose task never reached a worker: the heartbeat a running
build writes, and the sweep (Celery beat, `exports.sweep`) that restarts, fails or re-sends them.

A build holds its version by (status `building`, attempt n). While it runs, a thread moves the row's
`heartbeat_at` every EXPORTS_HEARTBEAT_SECONDS — on its own database connection, so the build's long
snapshot transaction does not hide it. When a worker is killed the heartbeat stops; once it is older than
EXPORTS_HEARTBEAT_TIMEOUT the sweep moves the version building → queued and queues it again — its next
start is attempt n+1, from scratch — or, when it was started EXPORTS_BUILD_MAX_ATTEMPTS times already,
building → failed with the reason. Either way the dead attempt's work folder is removed.

A version can also wait `queued` for ever: its task message was lost before any worker took it (the
process that queued it crashed between the commit and the send; a broker that lost its queue). Once it
was queued EXPORTS_QUEUED_TIMEOUT ago the sweep sends its build task again (queued → queued, with an
event). A message that was only slow is harmless: the build is idempotent, so the second task to arrive
finds the version building or built and does nothing.

Every move is `corpus.transitions.transition`, a compare-and-swap with its event row — on the attempt
*and* the stale heartbeat for a restart or a failure, on the old `queued_at` for a re-send: of two sweeps
(two beats by mistake) one wins and the other changes nothing; a worker that was only slow and wakes up
later holds attempt n, so it can no longer publish (nor fail) a version that moved on — and its own
heartbeat tells it so, and it stops.
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

from corpus.transitions import transition
from exports.models import ExportVersion, VersionStatus

from . import progress

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


def _queued_before(cutoff: datetime.datetime) -> Q:
    """Queued before `cutoff` (a row never re-queued: created before it)."""
    return Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True, created_at__lt=cutoff)


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
    # Still this attempt, still silent: a worker that beat (or a sweep that moved it) meanwhile wins.
    held = Q(attempt=attempt) & _stale(_cutoff(now))
    with transaction.atomic():
        if attempt >= settings.EXPORTS_BUILD_MAX_ATTEMPTS:
            outcome = "failed"
            won = transition(
                version,
                "status",
                VersionStatus.FAILED,
                expect=held,
                note=f"{why}; gave up after {attempt} attempt{'s' if attempt > 1 else ''}",
                fields={
                    "error": (
                        f"Gave up after {attempt} attempt{'s' if attempt > 1 else ''}: the worker building "
                        f"it died or was killed ({why}); EXPORTS_BUILD_MAX_ATTEMPTS is "
                        f"{settings.EXPORTS_BUILD_MAX_ATTEMPTS}. Build the export again once the workers "
                        "are healthy."
                    ),
                    "finished_at": now,
                },
            )
        else:
            outcome = "restarted"
            won = transition(
                version,
                "status",
                VersionStatus.QUEUED,
                expect=held,
                note=f"{why}; queued again for attempt {attempt + 1}",
                fields={"queued_at": now},
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


def resend_lost_task(version: ExportVersion, *, now: datetime.datetime | None = None) -> bool:
    """Send the build task of a `version` still queued EXPORTS_QUEUED_TIMEOUT after it was queued again
    (queued → queued, one event; the task goes after commit). True when this call did it. Idempotent:
    compare-and-swap on the status and the old queued_at, so of two sweeps one sends it, once."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.EXPORTS_QUEUED_TIMEOUT)
    waited = (now - (version.queued_at or version.created_at)).total_seconds()
    with transaction.atomic():
        won = transition(
            version,
            "status",
            VersionStatus.QUEUED,
            expect=_queued_before(cutoff),
            note=f"no worker took it for {waited:.0f} s (its task was lost?); build task sent again",
            fields={"queued_at": now},
        )
        if won:
            from exports.tasks import build_export_version  # tasks import the services

            build_export_version.delay_on_commit(version.pk)
    if won:
        log.warning(
            "export %s: queued for %.0f s without a worker taking it; task sent again", version, waited
        )
    return won


@dataclass
class SweepResult:
    restarted: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    folders_removed: list[str] = field(default_factory=list)


def sweep_builds(*, now: datetime.datetime | None = None) -> SweepResult:
    """Restart or fail every build whose worker went silent, send the task of every version queued too
    long again, then remove work folders and progress files that no running attempt owns. Idempotent and
    safe with two sweeps at once (compare-and-swap)."""
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
    lost_cutoff = now - datetime.timedelta(seconds=settings.EXPORTS_QUEUED_TIMEOUT)
    lost = ExportVersion.objects.select_related("spec").filter(
        Q(status=VersionStatus.QUEUED) & _queued_before(lost_cutoff)
    )
    for version in lost.order_by("pk"):
        if resend_lost_task(version, now=now):
            result.resent.append(version.pk)

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
    if result.restarted or result.failed or result.resent or result.folders_removed:
        log.info(
            "exports sweep: restarted %s, failed %s, tasks sent again %s, removed work folders %s",
            result.restarted,
            result.failed,
            result.resent,
            result.folders_removed,
        )
    return result
