"""Writing imported records (corpus.services.dataset_import): the summary that travels with the
checkpoint, the COPY writer of instructions and their first revisions, and the writer threads that let
the database work beside the reading. No reading or typing here."""

import hashlib
import queue
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from django.db import connection, models
from django.db.models import NOT_PROVIDED
from django.utils import timezone

from ..models import (
    DatasetImport,
    Image,
    ImageEvent,
    Instruction,
    ItemStatus,
    Origin,
    ReviewStatus,
    Revision,
    RevisionAction,
)
from ..rules import RULES_VERSION
from ..transitions import check_move
from .dataset_readers import RawRecord
from .dataset_turns import TypedTurn
from .items import record_rules_check
from .review_state import mark_pending

# The summary names at most this many skipped records, reused images and near-duplicates each (and
# counts the rest): it is stored on the row and shown on a page.
LIST_MAX = 500


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
                    "id": storable(record.id),
                    "reason": storable(reason[:500]),
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
            source_record = storable(item.record.id or str(item.record.number))[:200]
            for turn in item.turns:
                status = ItemStatus.DRAFT if turn.flag else self.status
                if status == ItemStatus.DRAFT:
                    pending.add(item.image_id)
                rows.append((item.image_id, turn, status, source_record))
        if not rows:
            return set()
        now = timezone.now()
        if self.copy:
            # The foreign-key checks stay deferred to COMMIT, after the batch's turn: until then a writer
            # holds locks on nothing but its own new rows (checking the keys would lock the images
            # FOR KEY SHARE), so the writer whose turn it is can never wait for one that waits for it.
            self._copy(rows, now, ids)
        else:
            self._orm(rows, now)
        return pending

    def queue_for_review(self, image_ids: set[int]) -> None:
        """Images that got drafts go (back) to the review queue: new → pending and reviewed → pending,
        each move with its event, as review_state.mark_pending makes them — on PostgreSQL in one
        statement for the batch (mark_pending moves one image per two statements: a batch of 2,000
        records over new images would cost more than the records)."""
        if not image_ids:
            return
        note = f"new drafts: {self.note}"[:500]
        if not self.copy:
            mark_pending(image_ids, actor=self._by(), note=note)
            return
        for frm in _WAITING:
            check_move(Image, "review_status", frm, ReviewStatus.PENDING)
        with connection.cursor() as cursor:
            cursor.execute(
                _PENDING_SQL.format(images=Image._meta.db_table, events=ImageEvent._meta.db_table),
                [sorted(image_ids), list(_WAITING), self.by_id, note],
            )

    def _by(self):
        from django.contrib.auth import get_user_model

        return get_user_model()(pk=self.by_id) if self.by_id is not None else None

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


_WAITING = (ReviewStatus.NEW, ReviewStatus.REVIEWED)
# The moves of review_state.mark_pending, for many images in one statement: the rows are locked in id
# order (FOR NO KEY UPDATE, what an UPDATE of a non-key column takes anyway: it does not wait for the
# FOR KEY SHARE of another transaction's foreign-key checks), moved, and their events written from what
# they were.
_PENDING_SQL = """
WITH waiting AS (
    SELECT id, review_status FROM {images}
    WHERE id = ANY(%s) AND review_status = ANY(%s)
    ORDER BY id FOR NO KEY UPDATE
), moved AS (
    UPDATE {images} AS i SET review_status = 'pending'
    FROM waiting AS w WHERE i.id = w.id
    RETURNING i.id, w.review_status AS from_status
)
INSERT INTO {events} (image_id, from_status, to_status, actor_id, at, note)
SELECT id, from_status, 'pending', %s, now(), %s FROM moved
"""


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


UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """NUL cannot be stored in PostgreSQL text, a lone surrogate (which JSON's \\u escapes can make)
    cannot be encoded at all: the turn keeps U+FFFD and its flag names the character."""
    return UNSTORABLE.sub("\ufffd", text)


class Pipeline:
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
            raise Stopped("an earlier batch failed")

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


class Stopped(Exception):
    """A later batch gives up: an earlier one failed (its error is the one raised)."""


def merge_delta(summary: Summary, delta: Summary) -> None:
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


def count_written(prepared: list[Prepared], summary: Summary) -> None:
    for item in prepared:
        summary.imported_records += 1
        for turn in item.turns:
            summary.instructions += 1
            summary.by_type[turn.type] += 1
            if turn.flag:
                summary.flagged += 1


def uncount_written(prepared: list[Prepared], summary: Summary) -> None:
    """Undo count_written for records whose transaction rolled back."""
    for item in prepared:
        summary.imported_records -= 1
        for turn in item.turns:
            summary.instructions -= 1
            summary.by_type[turn.type] -= 1
            if turn.flag:
                summary.flagged -= 1
    for type_ in [t for t, n in summary.by_type.items() if n <= 0]:
        del summary.by_type[type_]
