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

import hashlib
import logging
import queue
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.db.models import NOT_PROVIDED
from django.utils import timezone

from ..models import (
    DatasetImport,
    Domain,
    ImportBatchStatus,
    Instruction,
    ItemStatus,
    Origin,
    Revision,
    RevisionAction,
)
from ..rules import RULES_VERSION, check_text
from ..transitions import record_event, transition
from .dataset_images import ImageResolver, image_store
from .dataset_readers import READERS, RawRecord, UnreadableDataset
from .dataset_turns import BadConversation, TypedTurn, pairs, type_turn
from .imports import printable_name
from .items import mark_images_pending, record_rules_check

log = logging.getLogger(__name__)

BATCH_RECORDS = 2000
# Writer threads on PostgreSQL (see import_records): the database's share of the work is the larger one.
WRITERS = 2
# The summary names at most this many skipped records, reused images and near-duplicates each (and
# counts the rest): it is stored on the row and shown on a page.
LIST_MAX = 500
ACTIVE = (ImportBatchStatus.QUEUED, ImportBatchStatus.RUNNING)
STAGING_PREFIX = "datasets"


@dataclass(slots=True)
class Prepared:
    record: RawRecord
    image_id: int
    turns: list[TypedTurn]


@dataclass
class Summary:
    """What an import did; stored as JSON on the DatasetImport (as_dict) and restored on a resume."""

    records: int = 0
    imported_records: int = 0
    skipped_records: int = 0
    instructions: int = 0
    flagged: int = 0
    by_type: Counter = field(default_factory=Counter)
    images_imported: int = 0
    images_reused: int = 0
    near_duplicates: int = 0
    skipped: list = field(default_factory=list)
    reused: list = field(default_factory=list)
    near: list = field(default_factory=list)

    def skip(self, record: RawRecord, reason: str) -> None:
        self.skipped_records += 1
        if len(self.skipped) < LIST_MAX:
            self.skipped.append(
                {
                    "record": record.number,
                    "line": record.line,
                    "id": _storable(record.id),
                    "reason": _storable(reason[:500]),
                }
            )

    def as_dict(self) -> dict:
        return {
            "records": self.records,
            "imported_records": self.imported_records,
            "skipped_records": self.skipped_records,
            "instructions": self.instructions,
            "flagged": self.flagged,
            "by_type": dict(sorted(self.by_type.items())),
            "images": {
                "imported": self.images_imported,
                "reused": self.images_reused,
                "near_duplicates": self.near_duplicates,
            },
            "skipped": self.skipped,
            "reused": self.reused,
            "near_duplicates": self.near,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Summary":
        if not data:
            return cls()
        images = data.get("images", {})
        return cls(
            records=data.get("records", 0),
            imported_records=data.get("imported_records", 0),
            skipped_records=data.get("skipped_records", 0),
            instructions=data.get("instructions", 0),
            flagged=data.get("flagged", 0),
            by_type=Counter(data.get("by_type", {})),
            images_imported=images.get("imported", 0),
            images_reused=images.get("reused", 0),
            near_duplicates=images.get("near_duplicates", 0),
            skipped=list(data.get("skipped", [])),
            reused=list(data.get("reused", [])),
            near=list(data.get("near_duplicates", [])),
        )

    def lines(self) -> list[str]:
        """For people: the counts, then each skipped record, reused image and near-duplicate named."""
        out = [
            f"records read: {self.records}; imported: {self.imported_records}; skipped: {self.skipped_records}",
            f"instructions: {self.instructions} ("
            + ", ".join(f"{t}: {n}" for t, n in sorted(self.by_type.items()))
            + f"); flagged for a person to type: {self.flagged}",
            f"images imported: {self.images_imported}; reused from the pool: {self.images_reused}; "
            f"near-duplicates flagged: {self.near_duplicates}",
        ]
        for s in self.skipped:
            where = f"record {s['record']}" + (f" (line {s['line']})" if s.get("line") else "")
            out.append(f"  skipped  {where}{' id ' + s['id'] if s.get('id') else ''}: {s['reason']}")
        if self.skipped_records > len(self.skipped):
            out.append(f"  … and {self.skipped_records - len(self.skipped)} more skipped records")
        for r in self.reused:
            out.append(f"  reused   {r['name']}: image {r['image_id']}")
        for r in self.near:
            out.append(f"  near-duplicate  {r['name']}: image {r['image_id']} looks like image {r['like']}")
        return out


# --- writing ---------------------------------------------------------------------------------------


def _copy_plan(model, explicit: list[str]) -> tuple[list[str], tuple]:
    """The columns a COPY into `model`'s table writes: `explicit` (the caller gives their values), then
    every other concrete column that has no database default, with its Python default — so a column
    another feature adds later gets its default instead of a NULL the table refuses."""
    rest, defaults = [], []
    for f in model._meta.concrete_fields:
        if f.column in explicit or f.primary_key:
            continue
        if isinstance(f, models.GeneratedField) or f.db_default is not NOT_PROVIDED:
            continue
        value = f.get_default()
        rest.append(f.column)
        defaults.append(f.get_db_prep_save(value, connection))
    return [*explicit, *rest], tuple(defaults)


_INSTRUCTION_COLUMNS = [
    "id",
    "image_id",
    "type",
    "question",
    "options",
    "answer",
    "status",
    "origin",
    "version",
    "reason",
    "created_by_id",
    "created_at",
    "updated_at",
    "checked_digest",
    "checked_rules",
    "dataset_import_id",
    "source_record",
]
_REVISION_COLUMNS = ["instruction_id", "version", "action", "by_id", "at", "after", "note"]


def content_digest(type_: str, question: str, options: list[str], answer: str) -> str:
    """What the database computes into Instruction.content_digest (md5 of the four fields joined by
    U+001F, options as PostgreSQL prints jsonb) — so that a valid row is written already marked as
    checked, without a second UPDATE. Should the two ever differ, the row is merely checked again by
    the exports (a test holds them equal)."""
    options_text = orjson.dumps(options).decode().replace('","', '", "') if options else "[]"
    return hashlib.md5(
        f"{type_}\x1f{question}\x1f{options_text}\x1f{answer}".encode(), usedforsecurity=False
    ).hexdigest()


class Writer:
    """Writes prepared records: PostgreSQL by COPY, other databases through the ORM."""

    def __init__(self, dataset_import: DatasetImport, *, by):
        self.dataset_import = dataset_import
        self.by_id = by.pk if by is not None else None
        self.status = ItemStatus.ACCEPTED if dataset_import.as_accepted else ItemStatus.DRAFT
        self.note = f"imported from {dataset_import.name}"[:500]
        self.copy = connection.vendor == "postgresql"
        self.check_now = False  # set by the pipeline, whose transactions are always the outermost
        if self.copy:
            self.ins_columns, self.ins_defaults = _copy_plan(Instruction, _INSTRUCTION_COLUMNS)
            self.rev_columns, self.rev_defaults = _copy_plan(Revision, _REVISION_COLUMNS)

    def begin(self) -> None:
        """At the start of a batch's transaction. On PostgreSQL its commit does not wait for the WAL
        flush: a crash may lose the last commits (never a part of one), and what a lost commit held —
        records and the checkpoint together — is simply imported again by the resumed run."""
        if self.copy:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")

    def allocate(self, batch: list[Prepared]) -> list[int] | None:
        """Ids for the batch's instructions, drawn from their sequence by the reading thread (PostgreSQL):
        ids follow the file's order whichever writer stores the batch, and the turns of an image keep
        their order (exports read an image's instructions by id)."""
        n = sum(len(item.turns) for item in batch)
        if not self.copy or not n:
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [Instruction._meta.db_table, n],
            )
            return [r[0] for r in cursor.fetchall()]

    def write(self, batch: list[Prepared], ids: list[int] | None = None) -> set[int]:
        """Store the batch's instructions and revisions (inside the caller's transaction), with `ids`
        when allocated beforehand; returns the ids of the images that got drafts (for
        `queue_for_review`)."""
        rows = []
        pending: set[int] = set()
        for item in batch:
            source_record = _storable(item.record.id or str(item.record.number))[:200]
            for turn in item.turns:
                status = ItemStatus.DRAFT if turn.flag else self.status
                if status == ItemStatus.DRAFT:
                    pending.add(item.image_id)
                rows.append((item.image_id, turn, status, source_record))
        if not rows:
            return set()
        now = timezone.now()
        if self.copy:
            self._copy(rows, now, ids)
            if self.check_now:
                with connection.cursor() as cursor:
                    # The foreign-key checks now rather than at COMMIT: in a writer thread this is still
                    # work done beside the other writer's, before the batch waits for its turn.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        else:
            self._orm(rows, now)
        return pending

    def queue_for_review(self, image_ids: set[int]) -> None:
        if image_ids:
            mark_images_pending(image_ids)

    def _copy(self, rows: list, now, ids: list[int] | None) -> None:
        with connection.cursor() as cursor:
            if ids is None or len(ids) != len(rows):
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [Instruction._meta.db_table, len(rows)],
                )
                ids = [r[0] for r in cursor.fetchall()]
            ins_sql = f"COPY {Instruction._meta.db_table} ({', '.join(self.ins_columns)}) FROM STDIN"
            rev_sql = f"COPY {Revision._meta.db_table} ({', '.join(self.rev_columns)}) FROM STDIN"
            dumps = orjson.dumps
            revisions = []
            import_id = self.dataset_import.pk
            with cursor.copy(ins_sql) as copy:
                write = copy.write_row
                extra = self.ins_defaults
                for pk, (image_id, turn, status, source_record) in zip(ids, rows, strict=True):
                    options = dumps(turn.options).decode() if turn.options else "[]"
                    valid = not turn.flag
                    write(
                        (
                            pk,
                            image_id,
                            turn.type,
                            turn.question,
                            options,
                            turn.answer,
                            status,
                            Origin.IMPORTED,
                            1,
                            turn.flag,
                            self.by_id,
                            now,
                            now,
                            content_digest(turn.type, turn.question, turn.options, turn.answer)
                            if valid
                            else "",
                            RULES_VERSION if valid else None,
                            import_id,
                            source_record,
                            *extra,
                        )
                    )
                    revisions.append(
                        (
                            pk,
                            1,
                            RevisionAction.CREATED,
                            self.by_id,
                            now,
                            dumps(_snapshot(turn, status)).decode(),
                            self.note,
                        )
                    )
            with cursor.copy(rev_sql) as copy:
                write = copy.write_row
                extra = self.rev_defaults
                for row in revisions:
                    write((*row, *extra))

    def _orm(self, rows: list, now) -> None:
        objects = [
            Instruction(
                image_id=image_id,
                type=turn.type,
                question=turn.question,
                options=turn.options,
                answer=turn.answer,
                status=status,
                origin=Origin.IMPORTED,
                reason=turn.flag,
                created_by_id=self.by_id,
                created_at=now,
                updated_at=now,
                dataset_import=self.dataset_import,
                source_record=source_record,
            )
            for image_id, turn, status, source_record in rows
        ]
        Instruction.objects.bulk_create(objects)
        Revision.objects.bulk_create(
            Revision(
                instruction=obj,
                version=1,
                action=RevisionAction.CREATED,
                by_id=self.by_id,
                at=now,
                after=_snapshot(turn, status),
                note=self.note,
            )
            for obj, (_image_id, turn, status, _src) in zip(objects, rows, strict=True)
        )
        record_rules_check([obj.pk for obj, row in zip(objects, rows, strict=True) if not row[1].flag])


def _snapshot(turn: TypedTurn, status: str) -> dict:
    """Instruction.snapshot() of the new row."""
    return {
        "type": turn.type,
        "question": turn.question,
        "options": turn.options,
        "answer": turn.answer,
        "status": status,
        "reason": turn.flag,
    }


# --- reading and preparing ----------------------------------------------------------------------


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    """NUL cannot be stored in PostgreSQL text, a lone surrogate (which JSON's \\u escapes can make)
    cannot be encoded at all: the turn keeps U+FFFD and its flag names the character."""
    return _UNSTORABLE.sub("\ufffd", text)


def prepare_turns(record: RawRecord) -> list[TypedTurn]:
    """The record's turns as typed instructions; BadConversation when it has none to give."""
    turns = []
    for question, answer in pairs(record.conversations):
        turn = type_turn(question, answer)
        if turn.flag:
            bad = check_text("text", [turn.question, turn.answer, *turn.options])
            if bad is not None:
                turn.question, turn.answer = _storable(turn.question), _storable(turn.answer)
                turn.options = [_storable(o) for o in turn.options]
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
    the key checks), the larger share, runs in two server processes and overlaps Python's instead of
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
        delta.reused.append({"name": _storable(name), "image_id": image_id, "record": record.number})

    def on_near(name: str, image_id: int, like: int, record: RawRecord) -> None:
        delta.near.append(
            {"name": _storable(name), "image_id": image_id, "like": like, "record": record.number}
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
        writer.check_now = True
        pipeline = _Pipeline(commit, WRITERS)
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


class _Pipeline:
    """Writer threads (WRITERS of them, each on its own connection) fed through a queue of one. Batches
    are numbered as they are handed over; a writer writes its batch beside the others' and commits it in
    its turn (`turn`), after every earlier batch. `put` hands a batch over (and raises what a writer
    raised), `finish` waits for the last commit, `stop` ends the threads in any case."""

    def __init__(self, commit: Callable, writers: int):
        self._commit = commit
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._turns = threading.Condition()
        self._committed = 0  # batches 1…this are committed (or given up)
        self._handed = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"dataset-import-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                number, work = item
                try:
                    if self._error is None:
                        self._commit(work, turn=lambda number=number: self._wait_turn(number))
                except BaseException as exc:  # handed to the reading thread, which raises it
                    self._error = self._error or exc
                finally:
                    self._wait_turn(number, fail_fast=False)
                    with self._turns:
                        self._committed = number
                        self._turns.notify_all()
        finally:
            connection.close()  # this thread's own connection

    def _wait_turn(self, number: int, *, fail_fast: bool = True) -> None:
        with self._turns:
            while self._committed < number - 1:
                self._turns.wait()
        if fail_fast and self._error is not None:
            raise _Stopped("an earlier batch failed")

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, work) -> None:
        self._check()
        self._handed += 1
        self._queue.put((self._handed, work))

    def finish(self) -> None:
        self.stop()
        self._check()

    def stop(self) -> None:
        for thread in self._threads:
            if thread.is_alive():
                self._queue.put(None)
        for thread in self._threads:
            thread.join()


class _Stopped(Exception):
    """A later batch gives up: an earlier one failed (its error is the one raised)."""


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


def _merge(summary: Summary, delta: Summary) -> None:
    summary.records += delta.records
    summary.skipped_records += delta.skipped_records
    summary.images_imported += delta.images_imported
    summary.images_reused += delta.images_reused
    summary.near_duplicates += delta.near_duplicates
    for mine, theirs in (
        (summary.skipped, delta.skipped),
        (summary.reused, delta.reused),
        (summary.near, delta.near),
    ):
        mine.extend(theirs[: max(0, LIST_MAX - len(mine))])
    summary.skipped.sort(key=lambda s: s["record"])


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
            _merge(summary, delta)
            merged = True
            writer.queue_for_review(pending)
            _count(prepared, summary)
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
        _merge(summary, delta)
    if counted:
        _uncount_after_failure(prepared, summary)
    for item in prepared:
        try:
            with transaction.atomic():
                writer.queue_for_review(writer.write([item]))
                _count([item], summary)
                _checkpoint(dataset_import, item.record.number, summary)
        except DatabaseError as one:
            if isinstance(one, _Abandoned):
                raise
            _uncount_after_failure([item], summary)
            summary.skip(item.record, f"could not be stored: {str(one).splitlines()[0][:300]}")
    with transaction.atomic():
        _checkpoint(dataset_import, last, summary)


def _count(prepared: list[Prepared], summary: Summary) -> None:
    for item in prepared:
        summary.imported_records += 1
        for turn in item.turns:
            summary.instructions += 1
            summary.by_type[turn.type] += 1
            if turn.flag:
                summary.flagged += 1


def _uncount_after_failure(prepared: list[Prepared], summary: Summary) -> None:
    """Undo _count for records whose transaction rolled back."""
    for item in prepared:
        summary.imported_records -= 1
        for turn in item.turns:
            summary.instructions -= 1
            summary.by_type[turn.type] -= 1
            if turn.flag:
                summary.flagged -= 1
    for type_ in [t for t, n in summary.by_type.items() if n <= 0]:
        del summary.by_type[type_]


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
    import datetime

    from django.db.models import Q

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
