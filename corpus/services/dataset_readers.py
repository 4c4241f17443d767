"""Readers of instruction datasets, one per format, each a stream of records: memory holds one chunk of
the file (or one Parquet batch), never the file.

- LLaVA JSON: one array of {"id", "image", "conversations"}. Read in 1 MB chunks; each element is decoded
  by the C scanner of `json` (`raw_decode`) where it starts. An element that does not decode is skipped
  up to the next line that starts a record at the same indentation (a raw line break cannot occur inside
  a JSON string, so such a line is always outside the broken element), and reported with its number.
- ShareGPT / InternVL JSONL: one record per line.
- Parquet: `pyarrow` batches of the columns id, image ({bytes, path} struct, bytes or a path) and
  conversations, the layout our Parquet export writes (exports/writers/parquet.py) and Hugging Face
  `datasets` reads.

Each reader yields `RawRecord`s: what a record says, or why it cannot be read. Turning turns into typed
instructions is corpus.services.dataset_turns' work.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

CHUNK_CHARS = 1 << 20
# A JSON element longer than this without a next record in sight is given up on (the rest of the file
# is reported as unreadable): the reader never holds more than this of a broken file.
MAX_RECORD_CHARS = 64 << 20
PARQUET_BATCH_ROWS = 512


@dataclass(slots=True)
class RawRecord:
    number: int  # 1-based position of the record in the file (array element, line or row)
    line: int | None = None  # the line it starts on (JSON formats)
    id: str = ""
    image: str | None = None  # the image's path as the record names it
    image_bytes: bytes | None = None  # embedded image (Parquet)
    conversations: list | None = None
    error: str = ""  # why the record cannot be read at all

    @property
    def where(self) -> str:
        return f"record {self.number}" + (f" (line {self.line})" if self.line else "")


class UnreadableDataset(Exception):
    """The file as a whole cannot be read (not a JSON array, not Parquet, missing)."""


def _fields(number: int, line: int | None, obj) -> RawRecord:
    """The fields our formats share, from one decoded element."""
    if not isinstance(obj, dict):
        return RawRecord(number, line, error=f"not a JSON object but {type(obj).__name__}")
    raw_id = obj.get("id")
    record = RawRecord(number, line, id="" if raw_id is None else str(raw_id)[:200])
    image = obj.get("image")
    if isinstance(image, list):  # InternVL's multi-image records
        if len(image) > 1:
            record.error = f"{len(image)} images in one record; only single-image records are imported"
            return record
        image = image[0] if image else None
    if image is not None and not isinstance(image, str):
        record.error = "the image must be a path (a string)"
        return record
    if not image:
        record.error = "no image (records without one are not imported)"
        return record
    record.image = image
    conversations = obj.get("conversations")
    if conversations is None:
        conversations = obj.get("messages")
    record.conversations = conversations
    return record


# --- LLaVA JSON --------------------------------------------------------------------------------------

_SPACE = re.compile(r"[ \t\r\n]*")
_decoder = json.JSONDecoder()


def _next_record_start(buf: str, start: int, column: int) -> int | None:
    """Where the next record starts after `start`: a line indented by `column` spaces whose first
    character opens an object (optionally after the comma that separates it). None if not in `buf`."""
    match = re.compile(r"\n {" + str(column) + r"}(?:, ?)?\{").search(buf, start)
    if match is None:
        return None
    return match.end() - 1


def read_llava(path: str | Path) -> Iterator[RawRecord]:
    """The elements of a LLaVA JSON array, one at a time."""
    try:
        # A byte that is not UTF-8 becomes U+FFFD in its record (shown to the reviewer), rather than
        # ending the import half-way through the file.
        fp = open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UnreadableDataset(f"cannot open {path}: {exc}") from None
    with fp:
        yield from _read_json_array(fp)


def _read_json_array(fp) -> Iterator[RawRecord]:
    buf = fp.read(CHUNK_CHARS)
    eof = not buf
    pos = _SPACE.match(buf, 0).end()
    if buf.startswith("\ufeff"):
        pos = _SPACE.match(buf, 1).end()
    if pos >= len(buf) or buf[pos] != "[":
        raise UnreadableDataset("not a JSON array (a LLaVA file is one array of records)")
    pos += 1
    line = 1 + buf.count("\n", 0, pos)  # the line `pos` is on
    number = 0
    expect_comma = False

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = fp.read(CHUNK_CHARS)
        if not chunk:
            eof = True
            return False
        # Keep from the start of pos's line: a broken record's indentation is measured from it.
        keep = buf.rfind("\n", 0, pos) + 1
        buf = buf[keep:] + chunk
        pos -= keep
        return True

    while True:
        # Between elements: whitespace, then a comma (after an element) or the closing bracket.
        while True:
            end = _SPACE.match(buf, pos).end()
            if end < len(buf) or not more():
                break
        line += buf.count("\n", pos, end)
        pos = end
        if pos >= len(buf):
            yield RawRecord(number + 1, line, error="the file ends inside the array (no closing ])")
            return
        char = buf[pos]
        if char == "]":
            return
        # A missing comma is forgiven: what follows is read as the next element (or reported broken).
        if expect_comma and char == ",":
            pos += 1
            while True:
                end = _SPACE.match(buf, pos).end()
                if end < len(buf) or not more():
                    break
            line += buf.count("\n", pos, end)
            pos = end
            if pos < len(buf) and buf[pos] == "]":
                return  # a trailing comma: tolerated
        number += 1
        start_line = line
        while True:
            try:
                obj, end = _decoder.raw_decode(buf, pos)
            except json.JSONDecodeError:
                column = pos - (buf.rfind("\n", 0, pos) + 1)
                resume = _next_record_start(buf, pos, column)
                if resume is None and len(buf) - pos < MAX_RECORD_CHARS and more():
                    continue  # perhaps only cut off by the chunk's end: read on
                if resume is None:
                    yield RawRecord(
                        number, start_line, error="broken JSON; the rest of the file cannot be read"
                    )
                    return
                line += buf.count("\n", pos, resume)
                pos = resume
                yield RawRecord(number, start_line, error="broken JSON")
                expect_comma = False
                break
            line += buf.count("\n", pos, end)
            pos = end
            expect_comma = True
            yield _fields(number, start_line, obj)
            break


# --- ShareGPT / InternVL JSONL ---------------------------------------------------------------------


def read_sharegpt(path: str | Path) -> Iterator[RawRecord]:
    """One record per non-empty line."""
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UnreadableDataset(f"cannot open {path}: {exc}") from None
    number = 0
    with fp:
        for line_no, raw in enumerate(fp, start=1):
            if not raw.strip():
                continue
            number += 1
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                yield RawRecord(number, line_no, error="broken JSON")
                continue
            yield _fields(number, line_no, obj)


# --- Parquet ---------------------------------------------------------------------------------------


def read_parquet(path: str | Path) -> Iterator[RawRecord]:
    """Rows of a Parquet file in batches: id, image (embedded bytes, or a path), conversations."""
    import pyarrow.parquet as pq
    from pyarrow.lib import ArrowException

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ArrowException) as exc:
        raise UnreadableDataset(f"not a Parquet file: {exc}") from None
    names = set(parquet.schema_arrow.names)
    conv_column = "conversations" if "conversations" in names else "messages"
    if conv_column not in names or "image" not in names:
        raise UnreadableDataset(
            "a Parquet dataset needs the columns image and conversations; this one has "
            + ", ".join(sorted(names))
        )
    columns = [c for c in ("id", "image", conv_column) if c in names]
    number = 0
    with parquet:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            data = batch.to_pydict()
            ids = data.get("id") or [None] * batch.num_rows
            for raw_id, image, conversations in zip(ids, data["image"], data[conv_column], strict=True):
                number += 1
                record = RawRecord(number, id="" if raw_id is None else str(raw_id)[:200])
                record.conversations = conversations
                if isinstance(image, dict):
                    record.image_bytes = image.get("bytes")
                    record.image = image.get("path")
                elif isinstance(image, bytes):
                    record.image_bytes = image
                elif isinstance(image, str):
                    record.image = image
                if record.image_bytes is None and not record.image:
                    record.error = "no image in this row"
                yield record


READERS = {"llava": read_llava, "sharegpt": read_sharegpt, "parquet": read_parquet}
