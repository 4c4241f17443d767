"""Uploads too large to import inside a request: staged to disk, imported by a Celery worker.

The request only copies the uploaded files to a staging folder (no decoding) and queues the batch; the
worker runs the same `import_images` as the command and keeps the summary on the ImportBatch row.
"""

import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .imports import FileResult, ImportSource, ImportSummary, import_images, sources_from_zip
from .models import Domain, ImportBatch, ImportBatchStatus

log = logging.getLogger(__name__)

STAGING = "import-staging"


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
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            domain=domain,
            created_by=by,
            source=source,
            license=license,
            prior_knowledge=prior_knowledge,
            n_files=len(files),
        )
        batch.staging_dir = f"{STAGING}/{batch.pk}"
        root = Path(settings.MEDIA_ROOT) / batch.staging_dir
        # One numbered folder per file keeps the upload order and the original names (which may repeat).
        for n, upload in enumerate(files):
            folder = root / f"{n:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            name = Path(upload.name or "upload").name or "upload"
            with open(folder / name, "wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
        batch.save(update_fields=["staging_dir"])
        from .tasks import import_batch  # tasks import this module

        import_batch.delay_on_commit(batch.pk)
    return batch


def sources_from_staging(root: Path) -> Iterator[ImportSource | FileResult]:
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() == ".zip":
                yield from sources_from_zip(lambda path=path: open(path, "rb"), path.name)
            else:
                yield ImportSource(path.name, lambda path=path: open(path, "rb"))


def run_import_batch(batch_id: int) -> ImportBatch | None:
    """Import a staged batch and store its summary. Idempotent: a finished batch is left alone; a batch
    left `running` by a worker that died is imported again (the files it already stored then count as
    duplicates, so nothing is stored twice)."""
    claimed = ImportBatch.objects.filter(
        pk=batch_id, status__in=[ImportBatchStatus.QUEUED, ImportBatchStatus.RUNNING]
    ).update(status=ImportBatchStatus.RUNNING, started_at=timezone.now())
    if not claimed:
        log.info("import batch %s is missing or finished; nothing to do", batch_id)
        return None
    batch = ImportBatch.objects.select_related("domain", "created_by").get(pk=batch_id)
    root = Path(settings.MEDIA_ROOT) / batch.staging_dir
    try:
        summary: ImportSummary = import_images(
            sources_from_staging(root),
            domain=batch.domain,
            by=batch.created_by,
            source=batch.source,
            license=batch.license,
            prior_knowledge=batch.prior_knowledge,
        )
    except Exception as exc:  # a bug or the disk, not a bad file: keep the batch and say why
        log.exception("import batch %s failed", batch_id)
        ImportBatch.objects.filter(pk=batch_id).update(
            status=ImportBatchStatus.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    ImportBatch.objects.filter(pk=batch_id).update(
        status=ImportBatchStatus.DONE, summary=summary.as_dict(), finished_at=timezone.now()
    )
    shutil.rmtree(root, ignore_errors=True)
    batch.refresh_from_db()
    return batch
