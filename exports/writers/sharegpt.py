"""ShareGPT / InternVL-style JSONL: one {"id", "image", "conversations"} record per line, the shape
InternVL's chat fine-tuning data reads."""

from collections.abc import Iterable
from typing import BinaryIO

import orjson

from . import Record

_BATCH = 256


class ShareGptWriter:
    def __init__(self, fp: BinaryIO):
        self._fp = fp
        self._pending: list[bytes] = []
        self.count = 0

    def write(self, record: Record) -> None:
        self._pending.append(
            orjson.dumps(
                {"id": record.id, "image": record.image, "conversations": record.conversations},
                option=orjson.OPT_APPEND_NEWLINE,
            )
        )
        self.count += 1
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._fp.write(b"".join(self._pending))
            self._pending.clear()

    def close(self) -> None:
        self._flush()


def write_sharegpt(records: Iterable[Record], fp: BinaryIO) -> int:
    """Write `records` as JSON lines to `fp`; return how many were written."""
    writer = ShareGptWriter(fp)
    for record in records:
        writer.write(record)
    writer.close()
    return writer.count
