"""LLaVA-style JSON: one JSON array of {"id", "image", "conversations"} written as a stream, so a
million records never sit in memory together."""

from collections.abc import Iterable
from typing import BinaryIO

import orjson

from . import Record

_BATCH = 256


class LlavaWriter:
    """Push records one by one; `close()` ends the array. Writes in batches of encoded records."""

    def __init__(self, fp: BinaryIO):
        self._fp = fp
        self._pending: list[bytes] = []
        self._opened = False
        self.count = 0

    def write(self, record: Record) -> None:
        self._pending.append(
            orjson.dumps({"id": record.id, "image": record.image, "conversations": record.conversations})
        )
        self.count += 1
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        # The first batch opens the array; later ones continue it.
        self._fp.write((b",\n" if self._opened else b"[\n") + b",\n".join(self._pending))
        self._opened = True
        self._pending.clear()

    def close(self) -> None:
        self._flush()
        self._fp.write(b"\n]\n" if self.count else b"[]\n")


def write_llava(records: Iterable[Record], fp: BinaryIO) -> int:
    """Write `records` as one LLaVA JSON array to `fp`; return how many were written."""
    writer = LlavaWriter(fp)
    for record in records:
        writer.write(record)
    writer.close()
    return writer.count
