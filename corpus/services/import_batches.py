"""Uploads too large to import inside a request: staged to disk, imported by a Celery worker.

The request only copies the uploaded files to a staging folder (no decoding) and queues the batch; the
worker runs the same `import_images` as the command and keeps the summary on the ImportBatch row.

Staging lives under IMPORT_STAGING_ROOT, outside MEDIA_ROOT, so no URL reaches a staged file. A batch's
folder is removed when it ends (done or failed); the sweep (`corpus.sweep`, on Celery beat) fails a
batch abandoned for IMPORT_ABANDONED_SECONDS and removes every folder whose batch has ended. Status moves
are compare-and-swap updates (`_move`): a worker that lost its batch to the sweep cannot finish it.
"""

import datetime
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Domain, ImportBatch, ImportBatchStatus
from ..transitions import record_event, transition
from .imports import (
    FileResult,
    ImportSource,
    ImportSummary,
    import_images,
    printable_name,
    sources_from_zip,
)

log = logging.getLogger(__name__)

# Where staging lived (under MEDIA_ROOT) before IMPORT_STAGING_ROOT: still read for a batch staged there,
# and swept; never served (corpus.media serves images/ and thumbs/ only).
LEGACY_STAGING = "import-staging"
ACTIVE = (ImportBatchStatus.QUEUED, ImportBatchStatus.RUNNING)
# The running batch's progress_at moves at most this often (one UPDATE, not one per file).
PROGRESS_EVERY = 5.0


def staging_root() -> Path:
    return Path(settings.IMPORT_STAGING_ROOT)


def staging_path(batch: ImportBatch) -> Path:
    if batch.staging_dir.startswith(LEGACY_STAGING + "/"):
        return Path(settings.MEDIA_ROOT) / batch.staging_dir
    return staging_root() / batch.staging_dir


def remove_staging(batch: ImportBatch) -> None:
    """Delete the batch's staged files. Idempotent."""
    if batch.staging_dir:
        shutil.rmtree(staging_path(batch), ignore_errors=True)


def _move(batch: ImportBatch, to: str, *, note: str, when: Q | None = None, **fields) -> bool:
    """The batch's status from what it was read as to `to` (corpus.transitions: compare-and-swap and an
    event row): False when it moved meanwhile (or `when` no longer holds)."""
    return transition(batch, "status", to, expect=when, note=note, fields=fields)


def needs_background(files: Sequence) -> bool:
    """True when an upload is too big to import within the request: any .zip (its size says nothing of
    how many images it holds), more than IMPORT_INLINE_MAX_FILES files or IMPORT_INLINE_MAX_BYTES bytes."""
    if any((f.name or "").lower().endswith(".zip") for f in files):
        return True
    return len(files) > settings.IMPORT_INLINE_MAX_FILES or sum(f.size or 0 for f in files) > (
        settings.IMPORT_INLINE_MAX_BYTES
    )


def stage_upload(
    files: Sequence,
    *,
    domain: Domain,
    by=None,
    source: str = "",
    license: str = "",
    prior_knowledge: str = "",
) -> ImportBatch:
    """Copy uploaded files to a staging folder and queue their import after commit. Not idempotent:
    every call is a new batch (a re-upload of the same files then reports them as duplicates)."""
    root = None
    try:
        with transaction.atomic():
            batch = ImportBatch.objects.create(
                domain=domain,
                created_by=by,
                source=source,
                license=license,
                prior_knowledge=prior_knowledge,
                n_files=len(files),
                progress_at=timezone.now(),
            )
            record_event(batch, from_status="", to_status=ImportBatchStatus.QUEUED, actor=by, note="uploaded")
            batch.staging_dir = str(batch.pk)
            root = staging_path(batch)
            # One numbered folder per file keeps the upload order and the original names (which may
            # repeat).
            for n, upload in enumerate(files):
                folder = root / f"{n:05d}"
                folder.mkdir(parents=True, exist_ok=True)
                with open(folder / _safe_name(upload.name), "wb") as out:
                    for chunk in upload.chunks():
                        out.write(chunk)
            batch.save(update_fields=["staging_dir"])
            from ..tasks import import_batch  # tasks import this module

            import_batch.delay_on_commit(batch.pk)
    except BaseException:
        if root is not None:  # the batch row was rolled back: nothing may keep its files
            shutil.rmtree(root, ignore_errors=True)
        raise
    return batch


def _safe_name(name: str | None) -> str:
    """The uploaded file's own name, usable as a file name: no folders, no control characters (a NUL
    cannot be in a path at all), not empty."""
    return printable_name(Path(name or "").name).strip()[:200] or "upload"


def sources_from_staging(root: Path) -> Iterator[ImportSource | FileResult]:
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() == ".zip":
                yield from sources_from_zip(lambda path=path: open(path, "rb"), path.name)
            else:
                yield ImportSource(path.name, lambda path=path: open(path, "rb"))


class _Abandoned(Exception):
    """The sweep failed this batch while it was importing (it looked abandoned)."""


def run_import_batch(batch_id: int) -> ImportBatch | None:
    """Import a staged batch and store its summary, then remove its staged files. Idempotent: a finished
    batch is left alone; a batch left `running` by a worker that died is imported again (the files it
    already stored then count as duplicates, so nothing is stored twice)."""
    now = timezone.now()
    batch = ImportBatch.objects.select_related("domain", "created_by").filter(pk=batch_id).first()
    started = batch is not None and batch.status in ACTIVE
    note = (
        "started again (redelivered)" if started and batch.status == ImportBatchStatus.RUNNING else "started"
    )
    if not started or not _move(batch, ImportBatchStatus.RUNNING, note=note, started_at=now, progress_at=now):
        log.info("import batch %s is missing or finished; nothing to do", batch_id)
        return None
    last = time.monotonic()

    def alive(result: FileResult) -> None:
        nonlocal last
        if time.monotonic() - last < PROGRESS_EVERY:
            return
        last = time.monotonic()
        moved = ImportBatch.objects.filter(pk=batch_id, status=ImportBatchStatus.RUNNING).update(
            progress_at=timezone.now()
        )
        if not moved:
            raise _Abandoned(f"import batch {batch_id} was ended by the sweep")

    try:
        summary: ImportSummary = import_images(
            sources_from_staging(staging_path(batch)),
            domain=batch.domain,
            by=batch.created_by,
            source=batch.source,
            license=batch.license,
            prior_knowledge=batch.prior_knowledge,
            on_result=alive,
        )
    except _Abandoned as exc:
        log.warning("%s; stopping", exc)
        return ImportBatch.objects.get(pk=batch_id)
    except Exception as exc:  # a bug or the disk, not a bad file: say why, and keep nothing staged
        log.exception("import batch %s failed", batch_id)
        _move(
            batch,
            ImportBatchStatus.FAILED,
            note="import failed",
            error=str(exc)[:2000],
            finished_at=timezone.now(),
        )
        remove_staging(batch)
        raise
    _move(
        batch, ImportBatchStatus.DONE, note="imported", summary=summary.as_dict(), finished_at=timezone.now()
    )
    remove_staging(batch)
    batch.refresh_from_db()
    return batch


@dataclass
class SweepResult:
    abandoned: list[int] = field(default_factory=list)
    folders_removed: list[str] = field(default_factory=list)


def sweep_import_batches(*, now: datetime.datetime | None = None) -> SweepResult:
    """Fail batches queued or running without progress for IMPORT_ABANDONED_SECONDS (with the reason)
    and remove the staging folders of every batch that has ended. Idempotent; safe with two sweeps at
    once (compare-and-swap; removing a removed folder is a no-op)."""
    now = now or timezone.now()
    result = SweepResult()
    # Folders are listed before rows are read: a folder listed here whose row then says queued/running is
    # kept, whatever happened in between.
    folders: list[Path] = []
    for root in (staging_root(), Path(settings.MEDIA_ROOT) / LEGACY_STAGING):
        if root.is_dir():
            folders += [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]

    cutoff = now - datetime.timedelta(seconds=settings.IMPORT_ABANDONED_SECONDS)
    stale = Q(progress_at__lt=cutoff) | Q(progress_at__isnull=True, created_at__lt=cutoff)
    for batch in ImportBatch.objects.filter(stale, status__in=ACTIVE).order_by("pk"):
        quiet = now - (batch.progress_at or batch.created_at)
        reason = (
            f"abandoned: {batch.status} with no progress for {quiet.total_seconds() / 3600:.1f} h "
            f"(IMPORT_ABANDONED_SECONDS={settings.IMPORT_ABANDONED_SECONDS}); its staged files were "
            "removed — upload them again"
        )
        if _move(
            batch, ImportBatchStatus.FAILED, note="abandoned", when=stale, error=reason, finished_at=now
        ):
            log.warning("import batch %s %s", batch.pk, reason)
            remove_staging(batch)
            result.abandoned.append(batch.pk)

    statuses = dict(
        ImportBatch.objects.filter(pk__in={int(p.name) for p in folders}).values_list("pk", "status")
    )
    for folder in folders:
        status = statuses.get(int(folder.name))
        if status in ACTIVE:
            continue
        if status is None and now.timestamp() - folder.stat().st_mtime < settings.IMPORT_ABANDONED_SECONDS:
            continue  # no row yet: an upload still being staged, inside its uncommitted transaction
        shutil.rmtree(folder, ignore_errors=True)
        result.folders_removed.append(str(folder))
    if result.abandoned or result.folders_removed:
        log.info("corpus sweep: abandoned batches %s, removed %s", result.abandoned, result.folders_removed)
    return result
