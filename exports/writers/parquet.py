"""Parquet with the image bytes embedded, in the layout Hugging Face `datasets` reads as an Image
feature (a struct of bytes and path, announced in the schema's "huggingface" metadata).

Rows are buffered into row groups of a bounded size, so memory does not grow with the dataset."""

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from . import Record

_TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("domain", pa.string()),
        ("conversations", pa.list_(_TURN)),
        ("instruction_ids", pa.list_(pa.int64())),
        ("types", pa.list_(pa.string())),
    ],
    metadata={
        b"huggingface": orjson.dumps(
            {
                "info": {
                    "features": {
                        "id": {"dtype": "string", "_type": "Value"},
                        "image": {"_type": "Image"},
                        "domain": {"dtype": "string", "_type": "Value"},
                        "conversations": [
                            {
                                "from": {"dtype": "string", "_type": "Value"},
                                "value": {"dtype": "string", "_type": "Value"},
                            }
                        ],
                        "instruction_ids": {
                            "feature": {"dtype": "int64", "_type": "Value"},
                            "_type": "Sequence",
                        },
                        "types": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
                    }
                }
            }
        )
    },
)


def read_image_file(record: Record) -> bytes:
    return Path(record.image_file).read_bytes()


class ParquetWriter:
    """Push records; a row group is written when it reaches `group_rows` records or `group_bytes`
    of image data, whichever comes first."""

    def __init__(
        self,
        fp: BinaryIO,
        *,
        read_image: Callable[[Record], bytes] = read_image_file,
        group_rows: int = 2000,
        group_bytes: int = 64 * 1024 * 1024,
    ):
        self._writer = pq.ParquetWriter(fp, SCHEMA, compression="zstd")
        self._read_image = read_image
        self._group_rows = group_rows
        self._group_bytes = group_bytes
        self._columns: dict[str, list] = {name: [] for name in SCHEMA.names}
        self._pending_bytes = 0
        self.count = 0

    def write(self, record: Record) -> None:
        data = self._read_image(record)
        columns = self._columns
        columns["id"].append(record.id)
        columns["image"].append({"bytes": data, "path": record.image})
        columns["domain"].append(record.domain)
        columns["conversations"].append(record.conversations)
        columns["instruction_ids"].append([int(i) for i in record.instruction_ids])
        columns["types"].append(list(record.types))
        self._pending_bytes += len(data)
        self.count += 1
        if len(columns["id"]) >= self._group_rows or self._pending_bytes >= self._group_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._columns["id"]:
            return
        self._writer.write_table(pa.Table.from_pydict(self._columns, schema=SCHEMA))
        self._columns = {name: [] for name in SCHEMA.names}
        self._pending_bytes = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def write_parquet(
    records: Iterable[Record], fp: BinaryIO, *, read_image: Callable[[Record], bytes] = read_image_file
) -> int:
    """Write `records` with their image bytes as Parquet to `fp`; return how many were written."""
    writer = ParquetWriter(fp, read_image=read_image)
    for record in records:
        writer.write(record)
    writer.close()
    return writer.count
