"""Pure writers, one per format: each takes an iterator of Records and a binary file, writes, and returns
how many records it wrote. They know nothing of Django or the database (golden-file tests pin them).

The push classes (`LlavaWriter` …) exist so one pass over the database can feed several formats and
splits at once; the `write_*` functions are the same writers for a plain iterator."""

from collections.abc import Iterable
from typing import NamedTuple

from exports.formatting import IMAGE_TOKEN


class Record(NamedTuple):
    """One training record: an image and one or more question/answer turns about it."""

    id: str
    image: str  # the path written into the data file (inside the archive, or referenced)
    domain: str
    conversations: list[dict[str, str]]  # alternating human/gpt turns, see conversations()
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
