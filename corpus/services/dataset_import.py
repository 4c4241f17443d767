"""Importing an existing instruction dataset (LLaVA JSON, ShareGPT/InternVL JSONL, Parquet): the one
path for the command, the page and the API.

A record is read (corpus.services.dataset_readers), its image resolved to a pool image — reused when its
bytes are there already, else imported through the image import (dataset_images) — and its turns typed
by the rules (dataset_turns). Only a record that is whole goes on: a missing image, broken JSON or no
turns skips it, with its number and reason in the summary. Whole records are written a batch at a time:
on PostgreSQL one COPY of the instructions (ids drawn from their sequence first) and one of their first
revisions, with the images marked pending and the checkpoint, in one transaction. Should that
transaction fail, the batch is written again one record per transaction, and a record the database still
refuses is skipped with the database's reason — a record is never half-imported.

Idempotent: `records_done` and the summary are updated in each batch's transaction, so a run that
stopped (a worker killed, a task redelivered) resumes after the last committed record.
"""

import datetime
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import DatasetImport, Domain, ImportBatchStatus, ItemStatus
from ..rules import check_text
from ..transitions import record_event, transition
from .dataset_images import ImageResolver, image_store
from .dataset_readers import READERS, RawRecord, UnreadableDataset
from .dataset_turns import BadConversation, TypedTurn, pairs, type_turn
from .dataset_writing import (
    Pipeline,
    Prepared,
    Summary,
    Writer,
    count_written,
    merge_delta,
    storable,
    uncount_written,
)
from .imports import printable_name

log = logging.getLogger(__name__)

BATCH_RECORDS = 2000
# Writer threads on PostgreSQL (see import_records): the database's share of the work is the larger one.
WRITERS = 2
ACTIVE = (ImportBatchStatus.QUEUED, ImportBatchStatus.RUNNING)
STAGING_PREFIX = "datasets"


def prepare_turns(record: RawRecord) -> list[TypedTurn]:
    """The record's turns as typed instructions; BadConversation when it has none to give."""
    turns = []
    for question, answer in pairs(record.conversations):
        turn = type_turn(question, answer)
        if turn.flag:
            bad = check_text("text", [turn.question, turn.answer, *turn.options])
            if bad is not None:
                turn.question, turn.answer = storable(turn.question), storable(turn.answer)
                turn.options = [storable(o) for o in turn.options]
        turns.append(turn)
    return turns


def data_paths(dataset_import: DatasetImport) -> tuple[Path, Path | None]:
    """The data file and the image folder/zip of an import (staged ones under the staging root)."""
    base = staging_root() / dataset_import.staging_dir if dataset_import.staging_dir else None
    data = Path(dataset_import.data_file) if base is None else base / dataset_import.data_file
    images = dataset_import.images
    if not images:
        return data, None
    return data, (Path(images) if base is None else base / images)


def import_records(
    dataset_import: DatasetImport,
    *,
    on_progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Read, resolve, type and write every record of `dataset_import` after its checkpoint; returns the
    summary. Raises UnreadableDataset when the file as a whole cannot be read.

    On PostgreSQL, outside a caller's transaction, the writing runs in WRITERS threads, each on its own
    connection, while this one prepares the next batch: the database's work (the COPYs, index upkeep,
    the key checks at commit), the larger share, runs in two server processes and overlaps Python's instead of
    following it. One batch waits between reader and writers at most, so memory stays bounded; ids are
    drawn here in file order, and batches commit in order, each with its checkpoint."""
    summary = Summary.from_dict(dataset_import.summary)
    skip_until = dataset_import.records_done
    data_path, images_path = data_paths(dataset_import)
    reader = READERS[dataset_import.format]
    try:
        store = image_store(images_path)
    except (OSError, ValueError) as exc:
        raise UnreadableDataset(str(exc)) from None
    by = dataset_import.created_by
    images_source = f"dataset import {dataset_import.pk}: {dataset_import.name}"[:1000]
    delta = Summary()  # what the batch being prepared adds (the committer merges it)

    def on_reused(name: str, image_id: int, record: RawRecord) -> None:
        delta.reused.append({"name": storable(name), "image_id": image_id, "record": record.number})

    def on_near(name: str, image_id: int, like: int, record: RawRecord) -> None:
        delta.near.append(
            {"name": storable(name), "image_id": image_id, "like": like, "record": record.number}
        )

    resolver = ImageResolver(
        store,
        domain=dataset_import.domain,
        by=by,
        source=images_source,
        on_reused=on_reused,
        on_near_duplicate=on_near,
    )
    writer = Writer(dataset_import, by=by)

    def commit(work, turn=lambda: None) -> None:
        _commit(*work, dataset_import=dataset_import, writer=writer, summary=summary, turn=turn)
        if on_progress:
            on_progress(summary)

    pipeline = None
    if writer.copy and not connection.in_atomic_block:
        pipeline = Pipeline(commit, WRITERS)
    batch: list[RawRecord] = []
    try:
        for record in reader(data_path):
            if record.number <= skip_until:
                continue
            batch.append(record)
            if len(batch) >= BATCH_RECORDS:
                prepared = _prepare(batch, resolver, delta)
                work = (prepared, delta, batch[-1].number, writer.allocate(prepared))
                pipeline.put(work) if pipeline else commit(work)
                batch, delta = [], Summary()
        if batch:
            prepared = _prepare(batch, resolver, delta)
            work = (prepared, delta, batch[-1].number, writer.allocate(prepared))
            pipeline.put(work) if pipeline else commit(work)
        if pipeline:
            pipeline.finish()
    finally:
        if pipeline:
            pipeline.stop()
        store.close()
    return summary


def _prepare(batch: list[RawRecord], resolver: ImageResolver, delta: Summary) -> list[Prepared]:
    """The batch's whole records, ready to write (images resolved, turns typed); the others are noted
    in `delta` as skipped with their reason."""
    readable: list[tuple[RawRecord, list[TypedTurn]]] = []
    for record in batch:
        delta.records += 1
        if record.error:
            delta.skip(record, record.error)
            continue
        try:
            readable.append((record, prepare_turns(record)))
        except BadConversation as exc:
            delta.skip(record, str(exc))
    before = (resolver.tally.imported, resolver.tally.reused, resolver.tally.near_duplicates)
    images = resolver.resolve([record for record, _turns in readable])
    prepared: list[Prepared] = []
    for (record, turns), image in zip(readable, images, strict=True):
        if image.error:
            delta.skip(record, image.error)
        else:
            prepared.append(Prepared(record, image.image_id, turns))
    delta.images_imported += resolver.tally.imported - before[0]
    delta.images_reused += resolver.tally.reused - before[1]
    delta.near_duplicates += resolver.tally.near_duplicates - before[2]
    return prepared


def _commit(
    prepared: list[Prepared],
    delta: Summary,
    last: int,
    ids: list[int] | None,
    *,
    dataset_import: DatasetImport,
    writer: Writer,
    summary: Summary,
    turn: Callable[[], None] = lambda: None,
) -> None:
    """Write a prepared batch with the checkpoint in one transaction — or, should that fail, one
    record per transaction, skipping (with the database's reason) what is still refused. `turn` returns
    once every earlier batch has committed: the rows may be written beside another writer's, but the
    summary, the review queue and the checkpoint move in record order."""
    merged = counted = False
    try:
        with transaction.atomic():
            writer.begin()
            pending = writer.write(prepared, ids)
            turn()
            merge_delta(summary, delta)
            merged = True
            writer.queue_for_review(pending)
            count_written(prepared, summary)
            counted = True
            _checkpoint(dataset_import, last, summary)
        return
    except DatabaseError as exc:
        if isinstance(exc, _Abandoned):
            raise
        log.warning(
            "dataset import %s: batch ending at record %s failed (%s); one by one",
            dataset_import.pk,
            last,
            exc,
        )
    turn()
    if not merged:
        merge_delta(summary, delta)
    if counted:
        uncount_written(prepared, summary)
    for item in prepared:
        try:
            with transaction.atomic():
                writer.queue_for_review(writer.write([item]))
                count_written([item], summary)
                _checkpoint(dataset_import, item.record.number, summary)
        except DatabaseError as one:
            if isinstance(one, _Abandoned):
                raise
            uncount_written([item], summary)
            summary.skip(item.record, f"could not be stored: {str(one).splitlines()[0][:300]}")
    with transaction.atomic():
        _checkpoint(dataset_import, last, summary)


class _Abandoned(DatabaseError):
    """The sweep failed this import while it ran (raised inside a batch's transaction, which it rolls
    back; a DatabaseError so that the one-by-one retry lets it through rather than retrying)."""


def _checkpoint(dataset_import: DatasetImport, records_done: int, summary: Summary) -> None:
    """The checkpoint, in the batch's transaction: a resumed run starts after `records_done`."""
    if dataset_import.pk is None:
        return
    moved = DatasetImport.objects.filter(pk=dataset_import.pk, status=ImportBatchStatus.RUNNING).update(
        records_done=records_done, summary=summary.as_dict(), progress_at=timezone.now()
    )
    if not moved:
        raise _Abandoned(f"dataset import {dataset_import.pk} is no longer running (ended by the sweep)")


# --- the import as a job ------------------------------------------------------------------------


def staging_root() -> Path:
    return Path(settings.IMPORT_STAGING_ROOT) / STAGING_PREFIX


def remove_staging(dataset_import: DatasetImport) -> None:
    """Delete the import's staged files. Idempotent; a command's import (read in place) has none."""
    if dataset_import.staging_dir:
        shutil.rmtree(staging_root() / dataset_import.staging_dir, ignore_errors=True)


def create_import(
    *,
    data_file: str,
    format: str,
    domain: Domain,
    name: str,
    status: str = ItemStatus.DRAFT,
    images: str = "",
    by=None,
    staging_dir: str = "",
) -> DatasetImport:
    """A queued DatasetImport row with its first event. Not idempotent: every call is a new import."""
    with transaction.atomic():
        dataset_import = DatasetImport.objects.create(
            name=name[:200],
            format=format,
            domain=domain,
            as_accepted=status == ItemStatus.ACCEPTED,
            created_by=by,
            data_file=data_file,
            images=images,
            staging_dir=staging_dir,
            progress_at=timezone.now(),
        )
        record_event(
            dataset_import, from_status="", to_status=ImportBatchStatus.QUEUED, actor=by, note="created"
        )
    return dataset_import


def stage_dataset_upload(
    data_upload,
    *,
    images_upload=None,
    format: str,
    domain: Domain,
    name: str = "",
    status: str = ItemStatus.DRAFT,
    by=None,
) -> DatasetImport:
    """Copy an uploaded data file (and image .zip) to a staging folder and queue the import after
    commit; `name` defaults to the uploaded file's name. Not idempotent: every call is a new import
    (re-imported records become new drafts)."""
    name = name or printable_name(Path(data_upload.name or "").name).strip() or "upload"
    root = None
    try:
        with transaction.atomic():
            dataset_import = create_import(
                data_file="data", format=format, domain=domain, name=name, status=status, by=by
            )
            dataset_import.staging_dir = str(dataset_import.pk)
            root = staging_root() / dataset_import.staging_dir
            root.mkdir(parents=True, exist_ok=True)
            _save_upload(data_upload, root / "data")
            if images_upload is not None:
                _save_upload(images_upload, root / "images.zip")
                dataset_import.images = "images.zip"
            dataset_import.save(update_fields=["staging_dir", "images"])
            from ..tasks import import_dataset  # tasks import this module

            import_dataset.delay_on_commit(dataset_import.pk)
    except BaseException:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return dataset_import


def _save_upload(upload, path: Path) -> None:
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)


def run_dataset_import(
    import_id: int, *, on_progress: Callable[[Summary], None] | None = None
) -> DatasetImport | None:
    """Run (or resume) an import and store its summary; remove its staged files when it ends.
    Idempotent: a finished import is left alone; one left running by a dead worker resumes after its
    checkpoint. A file that cannot be read at all fails the import with the reason."""
    dataset_import = DatasetImport.objects.select_related("domain", "created_by").filter(pk=import_id).first()
    if dataset_import is None or dataset_import.status not in ACTIVE:
        log.info("dataset import %s is missing or finished; nothing to do", import_id)
        return None
    resumed = dataset_import.status == ImportBatchStatus.RUNNING
    now = timezone.now()
    note = f"resumed after record {dataset_import.records_done}" if resumed else "started"
    fields = {"progress_at": now} if resumed else {"started_at": now, "progress_at": now}
    if not transition(dataset_import, "status", ImportBatchStatus.RUNNING, note=note, fields=fields):
        return None
    started = time.monotonic()
    try:
        summary = import_records(dataset_import, on_progress=on_progress)
    except _Abandoned as exc:
        log.warning("%s; stopping", exc)
        return DatasetImport.objects.get(pk=import_id)
    except UnreadableDataset as exc:
        _finish(dataset_import, ImportBatchStatus.FAILED, note="unreadable", error=str(exc)[:2000])
        return dataset_import
    except Exception as exc:
        log.exception("dataset import %s failed", import_id)
        dataset_import.refresh_from_db(fields=["status"])
        _finish(dataset_import, ImportBatchStatus.FAILED, note="failed", error=str(exc)[:2000])
        raise
    dataset_import.refresh_from_db(fields=["status"])
    _finish(
        dataset_import,
        ImportBatchStatus.DONE,
        note=f"{summary.imported_records} records in {time.monotonic() - started:.1f}s",
        summary=summary.as_dict(),
    )
    return dataset_import


def _finish(dataset_import: DatasetImport, to: str, *, note: str, **fields) -> None:
    if dataset_import.status == ImportBatchStatus.RUNNING:
        transition(
            dataset_import,
            "status",
            to,
            note=note,
            fields={**fields, "finished_at": timezone.now()},
        )
    remove_staging(dataset_import)


def sweep_dataset_imports(*, now=None) -> list[int]:
    """Fail imports queued or running without progress for IMPORT_ABANDONED_SECONDS and remove their
    staged files; remove the staged files of ended ones. Idempotent (compare-and-swap)."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.IMPORT_ABANDONED_SECONDS)
    stale = Q(progress_at__lt=cutoff) | Q(progress_at__isnull=True, created_at__lt=cutoff)
    failed = []
    for dataset_import in DatasetImport.objects.filter(stale, status__in=ACTIVE).order_by("pk"):
        reason = (
            f"abandoned: {dataset_import.status} with no progress for IMPORT_ABANDONED_SECONDS="
            f"{settings.IMPORT_ABANDONED_SECONDS}; its staged files were removed — upload them again"
        )
        if transition(
            dataset_import,
            "status",
            ImportBatchStatus.FAILED,
            expect=stale,
            note="abandoned",
            fields={"error": reason, "finished_at": now},
        ):
            remove_staging(dataset_import)
            failed.append(dataset_import.pk)
    root = staging_root()
    if root.is_dir():
        folders = {int(p.name): p for p in root.iterdir() if p.is_dir() and p.name.isdigit()}
        ended = DatasetImport.objects.filter(pk__in=list(folders)).exclude(status__in=ACTIVE)
        for pk in ended.values_list("pk", flat=True):
            shutil.rmtree(folders[pk], ignore_errors=True)
    return failed


def _in_place(data_file: Path, images) -> tuple[str, str]:
    if images is None:
        images = default_images(data_file)
    return str(data_file.resolve()), str(Path(images).resolve()) if images else ""


def queue_dataset_import(
    data_file: str | Path,
    *,
    format: str,
    domain: Domain,
    name: str,
    status: str = ItemStatus.DRAFT,
    images: str | Path | None = None,
    by=None,
) -> DatasetImport:
    """Queue the import of a file read in place for a worker (which must see the same paths). Not
    idempotent: every call is a new import."""
    data, image_path = _in_place(Path(data_file), images)
    with transaction.atomic():
        dataset_import = create_import(
            data_file=data, format=format, domain=domain, name=name, status=status, images=image_path, by=by
        )
        from ..tasks import import_dataset as task  # tasks import this module

        task.delay_on_commit(dataset_import.pk)
    return dataset_import


def import_dataset(
    data_file: str | Path,
    *,
    format: str,
    domain: Domain,
    name: str,
    status: str = ItemStatus.DRAFT,
    images: str | Path | None = None,
    by=None,
    on_progress: Callable[[Summary], None] | None = None,
) -> DatasetImport:
    """Import a dataset file read in place, at once (the command's path). Not idempotent: a second call
    is a second import."""
    data, image_path = _in_place(Path(data_file), images)
    dataset_import = create_import(
        data_file=data, format=format, domain=domain, name=name, status=status, images=image_path, by=by
    )
    run_dataset_import(dataset_import.pk, on_progress=on_progress)
    dataset_import.refresh_from_db()
    return dataset_import


def default_images(data_file: Path) -> Path | None:
    """Where a data file's images are when no folder is named: beside it — or, for a data file inside
    an unpacked export of ours (data/… beside images/), the export's root."""
    folder = data_file.resolve().parent
    if folder.name == "data" and (folder.parent / "images").is_dir():
        return folder.parent
    return folder
