"""Building a version: one consistent snapshot of the selected instructions, streamed through the
writers into per-split data files, then a deterministic tar with manifest.json and README.md.

- Snapshot: on PostgreSQL the rows are read in one REPEATABLE READ, READ ONLY transaction (SQLite: one
  read transaction), so a version reflects one state of the corpus; the manifest names the revision
  (Instruction.version) of every instruction it holds.
- Bounded memory: rows stream (COPY / chunked cursor), writers flush in batches, the per-instruction
  index and the image list go to temp files, never into lists.
- Reproducible: nothing time-dependent or version-dependent is in the archive (the version number and
  the build time live in the database and the file name only), so an unchanged rebuild has the same
  sha256.
- Idempotent task: a done/failed version is left alone; a queued one is built from scratch under a new
  attempt into its own temp folder, with a heartbeat (exports.services.recovery) that lets the sweep
  restart it if its worker dies; only the attempt that still holds the row publishes (rename and status
  swap in one transaction).
"""

import hashlib
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from corpus.rules import InstructionType, check_instruction
from corpus.transitions import transition
from exports.archive import HashingWriter, TarBuilder, append_file, file_sha256, fsync_directory
from exports.formatting import HINT_SUFFIX, IMAGE_TOKEN, format_question
from exports.models import ConversationMode, ExportFormat, ExportSpec, ExportVersion, ImageMode, VersionStatus
from exports.writers import Record
from exports.writers.llava import LlavaWriter
from exports.writers.parquet import ParquetWriter
from exports.writers.sharegpt import ShareGptWriter

from . import progress, recovery
from .card import render_card
from .rows import count_rows, iter_images
from .specs import ExportError, Selection, parse_selection

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "mminstruct-export/1"
INDEX_FIELDS = ["id", "version", "domain", "type", "split"]
INDEX_OPEN = b'  "instructions": [\n'
SPLITS = ("train", "validation")
_DATA_NAME = {
    ExportFormat.LLAVA: "data/{split}.llava.json",
    ExportFormat.SHAREGPT: "data/{split}.sharegpt.jsonl",
    ExportFormat.PARQUET: "data/{split}.parquet",
}
_PROGRESS_EVERY = 10_000


def software_version() -> str:
    try:
        return metadata.version("mminstruct-studio")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


def split_of(seed: int, sha256: str, train_ratio: float) -> str:
    """train or validation for an image: a stable hash of (seed, image sha256), independent of row order,
    so one image is always in exactly one split."""
    value = int.from_bytes(hashlib.sha256(f"{seed}:{sha256}".encode()).digest()[:8], "big")
    return "train" if value < train_ratio * 2**64 else "validation"


def _splitter(seed: int, train_ratio: float) -> Callable[[str], str]:
    """split_of(seed, ·, train_ratio) for many images: the same answer, with the constant parts of the
    computation done once (the first 8 digest bytes compared as bytes against the threshold's)."""
    prefix = f"{seed}:".encode()
    bound = train_ratio * 2**64  # value < bound ⇔ value < ceil(bound) for an integer value
    if bound > 2**64 - 1:
        return lambda sha256: "train"
    if bound <= 0:
        return lambda sha256: "validation"
    threshold = math.ceil(bound).to_bytes(8, "big")
    sha = hashlib.sha256

    def split(sha256: str) -> str:
        # The whole digest against the 8-byte threshold: bytes compare left to right, and a digest whose
        # first 8 bytes equal the threshold is not below it either way — no slice needed.
        return "train" if sha(prefix + sha256.encode()).digest() < threshold else "validation"

    return split


def image_arcname(domain: str, sha256: str, file_name: str) -> str:
    ext = Path(file_name).suffix.lower() or ".bin"
    return f"images/{domain}/{sha256}{ext}"


@dataclass
class StreamResult:
    counts: Counter = field(default_factory=Counter)  # (domain, type, split) → instructions
    records: Counter = field(default_factory=Counter)  # split → records
    skipped: Counter = field(default_factory=Counter)  # rule → instructions
    images: int = 0
    data_files: dict[str, Path] = field(default_factory=dict)
    captions: int = 0  # detailed-description records (spec.include_captions)
    # (image id, path, domain, split, image file) of each exported image, kept only for the captions.
    exported: list[tuple] = field(default_factory=list)


class Sinks:
    """The writers of each split, opened on the first record of that split (no empty files).

    The first JSON data file opened is written straight into the archive (TarBuilder.begin_member): it
    is the archive's first member and never copied. The other data files are files of their own."""

    def __init__(self, workdir: Path, formats: list[str], tar: TarBuilder):
        self.workdir = workdir
        self.formats = formats
        self.tar = tar
        self.first: str | None = None  # the data file written into the archive
        self.files: dict[str, Path] = {}  # the others
        self.hashers: dict[str, HashingWriter] = {}
        self._open: dict[str, list] = {}
        self._handles: list = []

    def writers(self, split: str) -> list:
        found = self._open.get(split)
        if found is None:
            found = []
            for fmt in self.formats:
                name = _DATA_NAME[fmt].format(split=split)
                if fmt == ExportFormat.PARQUET:
                    # pyarrow writes through its own buffers (and file offsets into its footer): a file
                    # of its own, hashed after it is closed.
                    path = self.workdir / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fp = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
                    self.files[name] = path
                else:
                    # The JSON writers hand over finished bytes: hash them on the way to the disk (in a
                    # worker thread) instead of reading the file back.
                    if self.first is None:
                        self.first = name
                        raw = self.tar.begin_member(name)
                    else:
                        path = self.workdir / name
                        path.parent.mkdir(parents=True, exist_ok=True)
                        raw = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
                        self.files[name] = path
                    fp = self.hashers[name] = HashingWriter(raw)
                self._handles.append(fp)
                writer = {
                    ExportFormat.LLAVA: LlavaWriter,
                    ExportFormat.SHAREGPT: ShareGptWriter,
                    ExportFormat.PARQUET: ParquetWriter,
                }[fmt](fp)
                found.append(writer)
            self._open[split] = found
        return found

    def close(self) -> None:
        try:
            if not self._open:
                self.writers("train")  # an empty selection still yields (empty) train files, never none
            for writers in self._open.values():
                for writer in writers:
                    writer.close()
        finally:
            for fp in self._handles:  # also stops the hashing threads
                fp.close()
        if self.first is not None:
            self.tar.end_member()

    def describe(self) -> dict[str, dict]:
        """{name: {"bytes", "sha256"}} of every data file, once closed."""
        names = sorted([*self.files, *([self.first] if self.first else [])])
        out = {}
        for name in names:
            hasher = self.hashers.get(name)
            if hasher is not None:
                out[name] = {"bytes": hasher.size, "sha256": hasher.hexdigest()}
            else:
                out[name] = {
                    "bytes": self.files[name].stat().st_size,
                    "sha256": file_sha256(self.files[name]),
                }
        return out


def stream_records(
    images: Iterable[list],
    *,
    spec: ExportSpec,
    sinks: Sinks,
    index_fp,
    images_fp,
    on_progress: Callable[[int], None],
) -> StreamResult:
    """The hot loop: check each instruction against the type rules (unless its content passed them when
    it was written), format, build the record's conversation, fan out to the writers of its image's
    split, and note the instruction's revision in the index. It is the one place a conversation is built:
    alternating human/gpt turns, the image token in front of the first human turn only; one record per
    image (multi-turn) or per instruction (tests/exports/test_writers.py holds its output to the golden
    files), and one per generated dialogue (its turns in order, after the image's other records).
    `images` (from rows.iter_images) come in image-id order, each with its instructions in id order.

    Written for a million rows: names bound to locals, per-image work done once per image (on its
    first valid instruction: an image whose instructions are all skipped is not exported), per-row
    output kept as strings joined in batches."""
    result = StreamResult()
    records = result.records
    skipped = result.skipped
    check = check_instruction
    fmt_question = format_question
    multi_turn = spec.conversation_mode == ConversationMode.MULTI_TURN
    copy_images = spec.image_mode == ImageMode.COPY
    media_root = str(settings.MEDIA_ROOT)
    split_for = _splitter(spec.seed, spec.train_ratio)
    index_lines: list[str] = []
    index_append = index_lines.append
    image_lines: list[str] = []
    # (domain, split) → {type: instructions}: plain dicts with every type present (a Counter's item
    # update costs twice as much), zeros dropped at the end.
    counts_by_group: dict[tuple[str, str], dict[str, int]] = {}
    no_counts = dict.fromkeys(InstructionType.values, 0)

    keep_images = spec.include_captions
    exported = result.exported
    mcq = "multiple_choice"
    # new_record(Record, (…all 7 fields…)) makes Record(…) without the NamedTuple's Python-level __new__.
    new_record = tuple.__new__
    suffix = HINT_SUFFIX
    token = f"{IMAGE_TOKEN}\n"
    index_write = index_fp.write
    seen = 0
    next_report = 8192

    def start_image(image_id, sha, file_name, dom):
        """The per-image work, once, at the image's first exported item (a single instruction or a
        dialogue): its split and writers, the counter of its (domain, split), the index line's pieces,
        its path in the records (and its line in the image list when images are copied), and its entry
        for the caption records."""
        split = split_for(sha)
        type_counts = counts_by_group.get((dom, split))
        if type_counts is None:
            type_counts = counts_by_group[(dom, split)] = no_counts.copy()
        abs_file = f"{media_root}/{file_name}"
        if copy_images:
            path = image_arcname(dom, sha, file_name)
            image_lines.append(f"{path}\t{file_name}\t{sha}\n")
        else:
            path = file_name
        result.images += 1
        if keep_images:
            exported.append((image_id, path, dom, split, abs_file))
        index_dom, index_split = f',"{dom}","', f'","{split}"],\n'
        return split, sinks.writers(split), type_counts, index_dom, index_split, abs_file, path

    for image_id, sha, file_name, dom, instructions in images:
        conv = None  # set on the image's first valid single instruction
        dialogues = None  # conversation id → its valid turns, when the image has dialogues
        for iid, ver, typ, question, options, answer, checked, dialogue, turn in instructions:
            # Content that passed the current rules when it was written (and has not changed since,
            # as the database's content digest shows) is not checked again.
            if not checked and check(typ, question, options, answer):
                skipped[check(typ, question, options, answer)[0].rule] += 1
                continue
            human = fmt_question(typ, question, options) if typ == mcq else question.strip() + suffix[typ]
            if dialogue:
                if dialogues is None:
                    dialogues = {}
                dialogues.setdefault(dialogue, []).append((turn, iid, ver, typ, human, answer.strip()))
                continue
            if conv is None:
                split, writers, type_counts, index_dom, index_split, abs_file, path = start_image(
                    image_id, sha, file_name, dom
                )
                conv = [{"from": "human", "value": token + human}, {"from": "gpt", "value": answer.strip()}]
                ids = [iid]
                types = [typ]
            elif multi_turn:
                conv += ({"from": "human", "value": human}, {"from": "gpt", "value": answer.strip()})
                ids.append(iid)
                types.append(typ)
            else:
                conv = [{"from": "human", "value": token + human}, {"from": "gpt", "value": answer.strip()}]
                ids = [iid]
                types = [typ]
            if not multi_turn:
                record = new_record(Record, (f"instruction-{iid}", path, dom, conv, ids, types, abs_file))
                for writer in writers:
                    writer.write(record)
                records[split] += 1
            type_counts[typ] += 1
            index_append(f"[{iid},{ver}{index_dom}{typ}{index_split}")
        if multi_turn and conv is not None:
            record = new_record(Record, (f"image-{image_id}", path, dom, conv, ids, types, abs_file))
            for writer in writers:
                writer.write(record)
            records[split] += 1
        if dialogues:
            # One multi-turn record per dialogue, whatever the conversation mode: its turns 1, 2, … in
            # order, up to the first one missing (not selected — a draft, a rejection, another type — or
            # broken): a later turn may build on the missing one, so the dialogue ends before it.
            for dialogue in sorted(dialogues):
                turns = sorted(dialogues[dialogue])
                if turns[0][0] != 1:
                    continue
                if conv is None:  # the image's first exported item
                    conv = []
                    split, writers, type_counts, index_dom, index_split, abs_file, path = start_image(
                        image_id, sha, file_name, dom
                    )
                dconv: list[dict] = []
                dids: list[int] = []
                dtypes: list[str] = []
                for number, (turn, iid, ver, typ, human, answer) in enumerate(turns, start=1):
                    if turn != number:
                        break
                    dconv += (
                        {"from": "human", "value": token + human if number == 1 else human},
                        {"from": "gpt", "value": answer},
                    )
                    dids.append(iid)
                    dtypes.append(typ)
                    type_counts[typ] += 1
                    index_append(f"[{iid},{ver}{index_dom}{typ}{index_split}")
                record = new_record(
                    Record, (f"conversation-{dialogue}", path, dom, dconv, dids, dtypes, abs_file)
                )
                for writer in writers:
                    writer.write(record)
                records[split] += 1
        seen += len(instructions)
        if seen >= next_report:
            next_report = seen + 8192
            index_write("".join(index_lines).encode())
            index_lines.clear()
            if image_lines:
                images_fp.write("".join(image_lines).encode())
                image_lines.clear()
            on_progress(seen)
    # Every index line ends in ",\n"; the last one's comma is dropped when the manifest is made.
    if index_lines:
        index_write("".join(index_lines).encode())
    if image_lines:
        images_fp.write("".join(image_lines).encode())
    counts = result.counts
    for (dom, split_name), per_type in counts_by_group.items():
        for typ, n in per_type.items():
            if n:
                counts[(dom, typ, split_name)] += n
    on_progress(seen)
    return result


CAPTION_PROMPT = "Describe this image in detail."
CAPTION_TYPE = "detailed_description"


def write_captions(result: StreamResult, sinks: Sinks, *, chunk: int = 1000) -> None:
    """The captions as training data (MMInstruct released caption sets beside its QA): for each exported
    image, its newest accepted caption as one detailed-description record — "<image>\nDescribe this
    image in detail." and the caption — to the writers of the image's split, after its instructions'
    records. Read in chunks of image ids, inside the build's snapshot."""
    from corpus.models import Caption, ItemStatus

    exported = result.exported
    for start in range(0, len(exported), chunk):
        part = exported[start : start + chunk]
        newest: dict[int, tuple[int, str]] = {}
        rows = (
            Caption.objects.filter(image_id__in=[e[0] for e in part], status=ItemStatus.ACCEPTED)
            .order_by("image_id", "-id")
            .values_list("image_id", "id", "text")
        )
        for image_id, caption_id, text in rows:
            newest.setdefault(image_id, (caption_id, text))
        for image_id, path, dom, split, abs_file in part:
            found = newest.get(image_id)
            if found is None or not found[1].strip():
                continue
            conv = [
                {"from": "human", "value": f"{IMAGE_TOKEN}\n{CAPTION_PROMPT}"},
                {"from": "gpt", "value": found[1].strip()},
            ]
            record = Record(f"caption-{found[0]}", path, dom, conv, [], [CAPTION_TYPE], abs_file)
            for writer in sinks.writers(split):
                writer.write(record)
            result.records[split] += 1
            result.captions += 1


@contextmanager
def _read_transaction(outer: bool) -> Iterator[None]:
    """transaction.atomic() — but on SQLite a DEFERRED one. The settings make every SQLite transaction
    IMMEDIATE (it takes the write lock at BEGIN, so that writers queue instead of failing); a build only
    reads, and holding the write lock for its whole length would lock out every writer, its own
    heartbeat included. In WAL mode a deferred transaction reads one snapshot from its first read."""
    if connection.vendor != "sqlite" or outer:
        with transaction.atomic():
            yield
        return
    connection.ensure_connection()  # connecting sets transaction_mode from the settings
    saved = connection.transaction_mode
    connection.transaction_mode = None  # plain BEGIN = DEFERRED
    try:
        atomic = transaction.atomic()
        atomic.__enter__()
    finally:
        connection.transaction_mode = saved
    try:
        yield
    except BaseException as exc:
        atomic.__exit__(type(exc), exc, exc.__traceback__)
        raise
    else:
        atomic.__exit__(None, None, None)


@contextmanager
def snapshot() -> Iterator[None]:
    """A transaction that reads one consistent state of the corpus. On PostgreSQL it is REPEATABLE READ
    and READ ONLY — unless we are already inside a transaction (tests), whose snapshot then serves."""
    outer = connection.in_atomic_block
    with _read_transaction(outer):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if not outer:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # Plan for all the rows, not the first ones (docs/performance.md: 8.6× otherwise).
                cursor.execute("SET LOCAL cursor_tuple_fraction = 1")
                # No parallel workers: the build's own process needs the other core (measured at 1M:
                # two workers scanning images saved the server nothing and cost the build ~0.1 s).
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        yield


def build_archive(spec: ExportSpec, workdir: Path, *, on_progress: Callable[[int, int], None]) -> dict:
    """Build the archive of `spec` in `workdir` (which must be empty or absent). Returns a dict with
    archive (Path), sha256, size, head (the manifest without its instruction list) and counts."""
    workdir.mkdir(parents=True, exist_ok=True)
    selection: Selection = parse_selection(spec.selection)
    formats = [f for f in ExportFormat.values if f in spec.formats]
    if not formats:
        raise ExportError("the spec names no format")
    archive = workdir / "archive.tar"
    tar = TarBuilder(archive)
    try:
        sha, size, head, timings = _build_into(tar, spec, selection, formats, workdir, on_progress)
    except BaseException:
        tar.abort()
        raise
    return {"archive": archive, "sha256": sha, "size": size, "head": head, "timings": timings}


def _build_into(
    tar: TarBuilder, spec, selection, formats, workdir, on_progress
) -> tuple[str, int, dict, dict]:
    """The archive's members, in order: the first JSON data file (streamed into it during the read),
    README.md, manifest.json (written into it), the other data files, then any copied images."""
    sinks = Sinks(workdir, formats, tar)
    index_path = workdir / "index.part"
    images_path = workdir / "images.tsv"
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    with snapshot():
        total = count_rows(selection)
        timings["count"] = time.perf_counter() - clock
        on_progress(0, total)
        images = iter_images(selection)
        with open(index_path, "wb", buffering=1 << 20) as index_fp, open(images_path, "wb") as images_fp:
            try:
                result = stream_records(
                    images,
                    spec=spec,
                    sinks=sinks,
                    index_fp=index_fp,
                    images_fp=images_fp,
                    on_progress=lambda n: on_progress(n, total),
                )
                images.close()  # the COPY ends before the captions' own query
                if spec.include_captions:
                    write_captions(result, sinks)
            finally:
                # A build stopped mid-stream ends its COPY now, on a connection still open — not when the
                # traceback that holds the generator is freed, after the task closed the connection.
                images.close()
                sinks.close()
    timings["stream"] = time.perf_counter() - clock - timings["count"]

    head = _manifest_head(spec, selection, result, sinks.describe())
    tar.add_bytes("README.md", render_card(head).encode())
    with tar.begin_member("manifest.json") as manifest_fp:
        image_files = images_path if spec.image_mode == ImageMode.COPY else None
        _write_manifest(manifest_fp, head, index_path, image_files)
    tar.end_member()
    timings["manifest"] = time.perf_counter() - clock - timings["count"] - timings["stream"]

    for name in sorted(sinks.files):
        tar.add_file(name, sinks.files[name])
    if spec.image_mode == ImageMode.COPY:
        for arcname, source, sha in _copied_images(images_path):
            tar.add_file(arcname, source, expect_sha256=sha)
    sha, size = tar.finish()
    timings["tar"] = time.perf_counter() - clock - sum(timings.values())
    return sha, size, head, timings


def data_cost(instructions_by_domain: dict[str, int]) -> dict | None:
    """What the exported instructions cost: each domain's cost per accepted instruction (review's ledger:
    model calls and people's time) times the instructions of that domain in the export. None when the
    ledger knows no cost for any of them (nothing was paid for: the card then says nothing)."""
    from review.services import ledger

    per = ledger.cost_per_accepted_by_domain()
    if not any(per.get(d) for d in instructions_by_domain):
        return None
    total = sum((per[d] * n for d, n in instructions_by_domain.items() if per.get(d)), start=0)
    return {
        "currency": settings.COST_CURRENCY,
        "total": str(total.quantize(ledger.CENT)),
        "per_accepted_by_domain": {d: str(per[d]) for d in sorted(instructions_by_domain) if per.get(d)},
        "basis": "the domain's cost per accepted instruction (model calls + people's active time) × its instructions here",
    }


def _manifest_head(spec: ExportSpec, selection: Selection, result: StreamResult, files: dict) -> dict:
    by_domain: Counter = Counter()
    by_type: Counter = Counter()
    by_split: Counter = Counter()
    for (domain, type_, split), n in result.counts.items():
        by_domain[domain] += n
        by_type[type_] += n
        by_split[split] += n
    if spec.image_mode == ImageMode.COPY:
        images = {"mode": "copy", "layout": "images/<domain>/<sha256>.<ext>", "relative_to": "archive root"}
    else:
        images = {
            "mode": "reference",
            "relative_to": "the MMInstruct Studio media folder (MEDIA_ROOT; over HTTP: MEDIA_URL)",
            "resolve": "join the record's image path to your copy of the media folder",
        }
    cost = data_cost(by_domain)
    return {
        **({"cost": cost} if cost else {}),
        "format": MANIFEST_FORMAT,
        "name": spec.name,
        "description": spec.description,
        "software": {"mminstruct-studio": software_version()},
        "spec": {
            "selection": selection.as_json(),
            "train_ratio": spec.train_ratio,
            "seed": spec.seed,
            "formats": sorted(spec.formats),
            "image_mode": spec.image_mode,
            "conversation_mode": spec.conversation_mode,
            **({"include_captions": True} if spec.include_captions else {}),
            "split_rule": "sha256(f'{seed}:{image_sha256}')[:8] as an integer < train_ratio * 2**64 → train",
        },
        "images": images,
        "counts": {
            **({"captions": result.captions} if spec.include_captions else {}),
            "instructions": sum(by_split.values()),
            "records": sum(result.records.values()),
            "images": result.images,
            "skipped_invalid": sum(result.skipped.values()),
            "skipped_by_rule": dict(sorted(result.skipped.items())),
            "by_split": dict(sorted(by_split.items())),
            "records_by_split": dict(sorted(result.records.items())),
            "by_domain": dict(sorted(by_domain.items())),
            "by_type": dict(sorted(by_type.items())),
            "by_domain_type_split": [
                {"domain": d, "type": t, "split": s, "instructions": n}
                for (d, t, s), n in sorted(result.counts.items())
            ],
        },
        "files": files,
        "instruction_fields": INDEX_FIELDS,
    }


def _write_manifest(out: BinaryIO, head: dict, index_path: Path, images_path: Path | None) -> None:
    """manifest.json: the head, then "instructions" with one [id, version, domain, type, split] per line
    (so that readers, like the diff, can stream it line by line), then — when images are copied —
    "image_files" with one [path in the archive, sha256, bytes] per line."""
    head_bytes = orjson.dumps(head, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    assert head_bytes.endswith(b"\n}")
    out.write(head_bytes[:-2] + b",\n" + INDEX_OPEN)
    index_size = index_path.stat().st_size
    if index_size:
        # Every index line ends in ",\n": all but the last comma, copied by the kernel.
        append_file(out, index_path, index_size - 2)
        out.write(b"\n")
    if images_path is None:
        out.write(b"  ]\n}\n")
        return
    out.write(b'  ],\n  "image_files": [\n')
    first = True
    for arcname, source, sha in _copied_images(images_path):
        entry = orjson.dumps([arcname, sha, source.stat().st_size])
        out.write(entry if first else b",\n" + entry)
        first = False
    out.write(b"\n  ]\n}\n" if not first else b"  ]\n}\n")


def _copied_images(images_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(path in the archive, file, sha256) of each image the build copies, from the list the stream
    wrote; a file that is gone fails the build with its name."""
    media_root = Path(settings.MEDIA_ROOT)
    with open(images_path, encoding="utf-8") as images:
        for line in images:
            arcname, file_name, sha = line.rstrip("\n").split("\t")
            source = media_root / file_name
            if not source.is_file():
                raise ExportError(f"image file missing: {file_name} (sha256 {sha})")
            yield arcname, source, sha


def version_path(version: ExportVersion) -> str:
    return f"{version.spec.name}/{version.spec.name}-v{version.number}.tar"


def start_attempt(version: ExportVersion, *, actor=None) -> bool:
    """Move a queued `version` to building under the next attempt number, its heartbeat starting now.
    False when it was not queued at that attempt any more (another worker started it first)."""
    attempt = version.attempt + 1
    now = timezone.now()
    return transition(
        version,
        "status",
        VersionStatus.BUILDING,
        expect={"attempt": version.attempt},
        actor=actor,
        note="started" if attempt == 1 else f"restarted from scratch (attempt {attempt})",
        fields={"attempt": attempt, "started_at": now, "heartbeat_at": now, "error": ""},
    )


def build_version(version: ExportVersion, *, actor=None) -> ExportVersion:
    """Build `version` and publish it as done (or record why it failed). Idempotent: a done or failed
    version is returned as it is; a queued one is built from scratch under the next attempt; a building one
    is left to its worker while that worker's heartbeat is fresh, and handed to recovery (queued again, or
    failed after EXPORTS_BUILD_MAX_ATTEMPTS) once it went silent."""
    version = ExportVersion.objects.select_related("spec").get(pk=version.pk)
    if version.status in (VersionStatus.DONE, VersionStatus.FAILED):
        log.info("export %s is %s already; nothing to do", version, version.status)
        return version
    if version.status == VersionStatus.BUILDING:
        # A redelivered task (or a second one): another attempt holds the version.
        if recovery.recover_build(version) is None:
            log.info("export %s attempt %s is building elsewhere; nothing to do", version, version.attempt)
        return ExportVersion.objects.get(pk=version.pk)
    if not start_attempt(version, actor=actor):
        log.info("export %s moved on before this build started", version)
        return ExportVersion.objects.get(pk=version.pk)
    attempt = version.attempt
    root = Path(settings.EXPORTS_ROOT)
    workdir = recovery.workdir_of(version.pk, attempt)
    # Leftovers of earlier attempts (a killed worker cleans nothing up; the sweep may not have run yet).
    # Should such an attempt still be running, it fails on its missing files — and its failure loses the
    # compare-and-swap anyway.
    for stale in recovery.building_root().glob(f"{version.pk}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    started = time.monotonic()
    heartbeat = recovery.Heartbeat(version)
    report = progress.Reporter(version.pk)

    def on_progress(done: int, total: int) -> None:
        if heartbeat.lost.is_set():
            raise recovery.BuildSuperseded(f"attempt {attempt} of {version} no longer holds it")
        report(done, total)

    try:
        with heartbeat:
            built = build_archive(version.spec, workdir, on_progress=on_progress)
        if heartbeat.lost.is_set():
            raise recovery.BuildSuperseded(f"attempt {attempt} of {version} no longer holds it")
        log.info(
            "export %s built: %s",
            version,
            ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in built["timings"].items()),
            extra={"export_timings": built["timings"]},
        )
        relative = version_path(version)
        final = root / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        head = built["head"]
        with transaction.atomic():
            # The status swap first: it takes the row (and on SQLite the write lock), so only the attempt
            # that still owns the version renames its file into place; a crash before commit leaves a
            # file that the next attempt overwrites.
            won = transition(
                version,
                "status",
                VersionStatus.DONE,
                expect={"attempt": attempt},
                actor=actor,
                note=f"built in {time.monotonic() - started:.1f}s",
                fields={
                    "file_path": relative,
                    "size_bytes": built["size"],
                    "sha256": built["sha256"],
                    "counts": head["counts"],
                    "manifest": head,
                    "finished_at": timezone.now(),
                },
            )
            if won:
                os.replace(built["archive"], final)
                fsync_directory(final.parent)  # the archive itself was fsynced by TarBuilder.finish
        if not won:
            heartbeat.lost.set()
            log.warning("export %s attempt %s lost the version to a newer attempt", version, attempt)
    except recovery.BuildSuperseded as exc:
        log.warning("export %s: %s; stopping this attempt", version, exc)
    except Exception as exc:
        log.exception("export %s attempt %s failed", version, attempt)
        version.refresh_from_db()
        if version.status == VersionStatus.BUILDING:  # and still this attempt's: else the CAS loses
            transition(
                version,
                "status",
                VersionStatus.FAILED,
                expect={"attempt": attempt},
                actor=actor,
                note=f"failed: {str(exc)[:200]}",
                fields={"error": str(exc)[:2000], "finished_at": timezone.now()},
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not heartbeat.lost.is_set():  # else the progress file is the newer attempt's
            progress.clear(version.pk)
    return ExportVersion.objects.get(pk=version.pk)
