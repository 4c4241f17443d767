"""Pure writers, one per format: each takes an iterator of Records and a binary file, writes, and returns
how many records it wrote. They know nothing of Django or the database (golden-file tests pin them).

The push classes (`LlavaWriter` …) exist so one pass over the database can feed several formats and
splits at once; the `write_*` functions are the same writers for a plain iterator. The conversations
inside the records are built in one place, the build's loop (exports.services.build.stream_records)."""

from typing import NamedTuple


class Record(NamedTuple):
    """One training record: an image and one or more question/answer turns about it."""

    id: str
    image: str  # the path written into the data file (inside the archive, or referenced)
    domain: str
    # Alternating {"from": "human"|"gpt", "value": …} turns; only the first human turn carries the image
    # token ("<image>\n" in front of the question).
    conversations: list[dict[str, str]]
    instruction_ids: list[int]
    types: list[str]
    image_file: str = ""  # where the image bytes can be read (Parquet embeds them)
