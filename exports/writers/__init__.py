"""Pure writers, one per format: each takes an iterator of Records and a binary file, writes, and returns
how many records it wrote. They know nothing of Django or the database (golden-file tests pin them).

The push classes (`LlavaWriter` …) exist so one pass over the database can feed several formats and
splits at once; the `write_*` functions are the same writers for a plain iterator."""

from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

import orjson

from exports.formatting import IMAGE_TOKEN


class Record(NamedTuple):
    """One training record: an image and one or more question/answer turns about it."""

    id: str
    image: str  # the path written into the data file (inside the archive, or referenced)
    domain: str
    turns: list[tuple[str, str]]  # (human text without the image token, model text)
    instruction_ids: list[int]
    types: list[str]
    image_file: str = ""  # where the image bytes can be read (Parquet embeds them)


def conversations(turns: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Alternating human/gpt turns; only the first human turn carries the image token."""
    out: list[dict[str, str]] = []
    for human, gpt in turns:
        out += ({"from": "human", "value": human}, {"from": "gpt", "value": gpt})
    if out:
        out[0] = {"from": "human", "value": f"{IMAGE_TOKEN}\n{out[0]['value']}"}
    return out


@lru_cache(maxsize=64)
def _record_template(turns: int) -> bytes:
    turn = b'{"from":"human","value":"%s"},{"from":"gpt","value":"%s"}'
    return b'{"id":"%s","image":"%s","conversations":[' + b",".join([turn] * turns) + b"]}"


def encode_record(record: Record) -> bytes:
    """`{"id", "image", "conversations"}` of a record as compact JSON: the bytes of
    `orjson.dumps({"id": …, "image": …, "conversations": conversations(record.turns)})`, made faster.

    All the record's texts are escaped by one orjson call on a flat list. When no text holds a quote
    (no `\\"` in the output), every `"` byte delimits a text, so `","` occurs only between two items
    and cuts them apart exactly; the escaped texts then fill a template. Otherwise (a quote, or a text
    ending in a backslash) the plain dict encoding is used."""
    flat = [record.id, record.image]
    for human, gpt in record.turns:
        flat += (human, gpt)
    turns = (len(flat) - 2) // 2
    if turns:
        flat[2] = f"{IMAGE_TOKEN}\n{flat[2]}"
    encoded = orjson.dumps(flat)
    if b'\\"' not in encoded and encoded.startswith(b'["') and encoded.endswith(b'"]'):
        return _record_template(turns) % tuple(encoded[2:-2].split(b'","'))
    return orjson.dumps(
        {"id": record.id, "image": record.image, "conversations": conversations(record.turns)}
    )
