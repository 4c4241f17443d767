"""Upload staging: outside MEDIA_ROOT, removed when its batch ends (done or failed), and swept by
`corpus.sweep` (Celery beat) for abandoned batches and leftovers — idempotent, safe with two sweeps."""

import datetime
import io
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.utils import timezone

from corpus.models import Domain, Image, ImportBatch, ImportBatchStatus
from corpus.services.import_batches import (
    LEGACY_STAGING,
    run_import_batch,
    stage_upload,
    staging_path,
    sweep_import_batches,
)
from corpus.tasks import import_batch, sweep
from tests.corpus.factories import ImageFactory, png_bytes

pytestmark = pytest.mark.django_db


def upload(n: int = 2) -> list[SimpleUploadedFile]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            zf.writestr(f"img-{i}.png", png_bytes(900 + i))
    return [SimpleUploadedFile("batch.zip", buf.getvalue())]


def ocr() -> Domain:
    # get_or_create: a transactional test may run after another one flushed the migrations' domains.
    return Domain.objects.get_or_create(slug="ocr", defaults={"name": "OCR"})[0]


def staged(admin_user) -> ImportBatch:
    return stage_upload(upload(), domain=ocr(), by=admin_user)


def quiet_for(batch: ImportBatch, seconds: float, **fields) -> None:
    ImportBatch.objects.filter(pk=batch.pk).update(
        progress_at=timezone.now() - datetime.timedelta(seconds=seconds), **fields
    )


def test_staging_is_outside_media_root_and_gone_when_the_batch_is_done(admin_user, settings):
    batch = staged(admin_user)
    folder = staging_path(batch)
    assert folder.is_dir() and folder.is_relative_to(settings.IMPORT_STAGING_ROOT)
    assert not folder.resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    assert batch.progress_at is not None
    import_batch(batch.pk)
    batch.refresh_from_db()
    assert batch.status == ImportBatchStatus.DONE and not folder.exists()


def test_a_failed_batch_says_why_and_keeps_no_staged_files(admin_user):
    # A row with a broken perceptual hash in the domain: the import fails as a whole (not one file).
    ImageFactory(domain=ocr(), phash="not-hex")
    batch = staged(admin_user)
    with pytest.raises(ValueError):
        import_batch(batch.pk)
    batch.refresh_from_db()
    assert batch.status == ImportBatchStatus.FAILED and "not-hex" in batch.error and batch.finished_at
    assert not staging_path(batch).exists()


@pytest.mark.parametrize("status", [ImportBatchStatus.QUEUED, ImportBatchStatus.RUNNING])
def test_the_sweep_fails_an_abandoned_batch_with_the_reason_and_removes_its_files(
    admin_user, settings, status
):
    settings.IMPORT_ABANDONED_SECONDS = 3600
    batch = staged(admin_user)
    quiet_for(batch, 3601, status=status)
    result = sweep_import_batches()
    assert result.abandoned == [batch.pk]
    batch.refresh_from_db()
    assert batch.status == ImportBatchStatus.FAILED and batch.finished_at
    assert f"abandoned: {status} with no progress for 1.0 h" in batch.error
    assert "IMPORT_ABANDONED_SECONDS=3600" in batch.error
    assert not staging_path(batch).exists()
    # A redelivered task of the dead worker finds it ended: nothing is imported, nothing changes.
    assert run_import_batch(batch.pk) is None
    assert (
        ImportBatch.objects.get(pk=batch.pk).status == ImportBatchStatus.FAILED and not Image.objects.exists()
    )
    assert sweep_import_batches().abandoned == []  # idempotent


def test_the_sweep_leaves_a_batch_with_recent_progress_alone(admin_user, settings):
    settings.IMPORT_ABANDONED_SECONDS = 3600
    batch = staged(admin_user)
    quiet_for(batch, 3500, status=ImportBatchStatus.RUNNING)
    sweep()  # the task beat runs
    batch.refresh_from_db()
    assert batch.status == ImportBatchStatus.RUNNING and staging_path(batch).exists()


def test_the_sweep_removes_folders_of_ended_batches_and_old_orphans_only(admin_user, settings):
    settings.IMPORT_ABANDONED_SECONDS = 3600
    done = staged(admin_user)
    ImportBatch.objects.filter(pk=done.pk).update(status=ImportBatchStatus.DONE)  # crashed before clean-up
    waiting = staged(admin_user)
    root = Path(settings.IMPORT_STAGING_ROOT)
    old_orphan, new_orphan = root / "900001", root / "900002"  # no row: a rolled-back or in-flight upload
    for folder in (old_orphan, new_orphan):
        (folder / "00000").mkdir(parents=True)
    hours_ago = time.time() - 7200
    os.utime(old_orphan, (hours_ago, hours_ago))
    legacy = Path(settings.MEDIA_ROOT) / LEGACY_STAGING / str(done.pk)  # the old layout, under MEDIA_ROOT
    (legacy / "00000").mkdir(parents=True)

    result = sweep_import_batches()

    assert not staging_path(done).exists() and not old_orphan.exists() and not legacy.exists()
    assert new_orphan.exists() and staging_path(waiting).exists()
    assert sorted(result.folders_removed) == sorted(map(str, [staging_path(done), old_orphan, legacy]))


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_fail_an_abandoned_batch_once(postgres, admin_user, settings):
    settings.IMPORT_ABANDONED_SECONDS = 60
    batch = staged(admin_user)
    quiet_for(batch, 61, status=ImportBatchStatus.RUNNING)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def one_sweep():
        try:
            barrier.wait()
            results.append(sweep_import_batches())
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
    assert sum(len(r.abandoned) for r in results) == 1
    assert ImportBatch.objects.get(pk=batch.pk).status == ImportBatchStatus.FAILED


def test_beat_runs_both_sweeps_of_this_area_every_sweep_interval():
    from mminstruct_site.celery import app

    schedule = django_settings.CELERY_BEAT_SCHEDULE
    for entry, task in (("corpus-sweep", "corpus.sweep"), ("exports-sweep", "exports.sweep")):
        assert schedule[entry] == {"task": task, "schedule": django_settings.SWEEP_INTERVAL}
        app.loader.import_default_modules()
        assert task in app.tasks


def test_an_uploaded_name_with_control_characters_is_staged_and_imported_without_them(admin_user):
    files = [SimpleUploadedFile(f"scan\x07{n}\x1b.png", png_bytes(950 + n)) for n in range(2)]
    batch = stage_upload(files, domain=ocr(), by=admin_user)
    import_batch(batch.pk)
    batch.refresh_from_db()
    assert batch.status == ImportBatchStatus.DONE, batch.error
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["scan0.png", "scan1.png"]
