"""The pure writers on a fixed small input, against golden files (UPDATE_GOLDEN=1 rewrites them)."""

import io
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus.rules import OPTION_LABELS
from exports.formatting import ANSWER_HINT, IMAGE_TOKEN, format_question
from exports.writers import Record, conversations
from exports.writers.llava import write_llava
from exports.writers.parquet import write_parquet
from exports.writers.sharegpt import write_sharegpt

GOLDEN = Path(__file__).parent / "golden"

RECORDS = [
    Record(
        id="image-1",
        image="images/animals/aaaa.png",
        domain="animals",
        conversations=conversations(
            [
                ("What animal is this?\nAnswer with a word or short phrase.", "a cat"),
                ("Which colour is its fur?\nA. black\nB. ginger\nAnswer with the option's letter.", "B"),
                ("Is it asleep?\nAnswer Yes or No.", "No"),
            ]
        ),
        instruction_ids=[1, 2, 3],
        types=["short_vqa", "multiple_choice", "judgement"],
    ),
    Record(
        id="image-2",
        image="images/charts/bbbb.jpg",
        domain="charts",
        conversations=conversations(
            [
                (
                    'Describe the chart, including "quotes", ünïcode and a\ttab.',
                    "It shows sales rising in 2024.",
                )
            ]
        ),
        instruction_ids=[7],
        types=["long_vqa"],
    ),
]
IMAGE_BYTES = {"image-1": b"\x89PNG fake one", "image-2": b"\xff\xd8 fake two"}


def golden(name: str, data: bytes) -> bytes:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(data)
    return path.read_bytes()


def test_llava_writer_matches_golden_file():
    out = io.BytesIO()
    assert write_llava(iter(RECORDS), out) == 2
    assert out.getvalue() == golden("llava.json", out.getvalue())


def test_llava_writer_output_is_a_json_array_with_one_image_token_per_record():
    out = io.BytesIO()
    write_llava(RECORDS, out)
    data = json.loads(out.getvalue())
    assert [r["id"] for r in data] == ["image-1", "image-2"]
    for record in data:
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert turns[0]["value"].startswith(f"{IMAGE_TOKEN}\n")
        assert sum(t["value"].count(IMAGE_TOKEN) for t in turns) == 1


def test_llava_writer_streams_many_records_in_batches_and_handles_none():
    out = io.BytesIO()
    many = [RECORDS[1]._replace(id=f"r{i}") for i in range(1000)]
    assert write_llava(many, out) == 1000
    assert [r["id"] for r in json.loads(out.getvalue())] == [f"r{i}" for i in range(1000)]
    empty = io.BytesIO()
    assert write_llava([], empty) == 0
    assert json.loads(empty.getvalue()) == []


def test_sharegpt_writer_matches_golden_file_one_record_per_line():
    out = io.BytesIO()
    assert write_sharegpt(RECORDS, out) == 2
    assert out.getvalue() == golden("sharegpt.jsonl", out.getvalue())
    lines = out.getvalue().decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["image-1", "image-2"]


def test_parquet_writer_matches_golden_content_and_is_deterministic():
    first, second = io.BytesIO(), io.BytesIO()
    write_parquet(RECORDS, first, read_image=lambda r: IMAGE_BYTES[r.id])
    write_parquet(RECORDS, second, read_image=lambda r: IMAGE_BYTES[r.id])
    assert first.getvalue() == second.getvalue()
    table = pq.read_table(io.BytesIO(first.getvalue()))
    rows = table.to_pylist()
    as_json = json.dumps(
        [
            {**row, "image": {"path": row["image"]["path"], "bytes": row["image"]["bytes"].hex()}}
            for row in rows
        ],
        indent=1,
        ensure_ascii=False,
    ).encode()
    assert as_json == golden("parquet.json", as_json)
    assert rows[0]["image"]["bytes"] == IMAGE_BYTES["image-1"]
    assert b"huggingface" in table.schema.metadata


def test_parquet_writer_writes_bounded_row_groups():
    from exports.writers.parquet import ParquetWriter

    out = io.BytesIO()
    writer = ParquetWriter(out, read_image=lambda r: b"x", group_rows=10)
    for i in range(35):
        writer.write(RECORDS[1]._replace(id=f"r{i}"))
    writer.close()
    meta = pq.ParquetFile(io.BytesIO(out.getvalue())).metadata
    assert meta.num_rows == 35
    assert meta.num_row_groups == 4


@pytest.mark.parametrize(
    ("type_", "options", "expected"),
    [
        (
            "multiple_choice",
            ["a cat", " a dog "],
            "Which?\nA. a cat\nB. a dog\nAnswer with the option's letter.",
        ),
        ("judgement", [], "Which?\nAnswer Yes or No."),
        ("short_vqa", [], "Which?\nAnswer with a word or short phrase."),
        ("long_vqa", [], "Which?"),
    ],
)
def test_questions_are_formatted_per_type(type_, options, expected):
    assert format_question(type_, " Which? ", options) == expected


def test_every_type_has_a_hint_entry_and_mcq_labels_come_from_the_rules():
    from corpus.rules import InstructionType

    assert set(ANSWER_HINT) == set(InstructionType.values)
    six = [f"option {i}" for i in range(6)]
    lines = format_question("multiple_choice", "Q", six).splitlines()[1:7]
    assert [line.split(".")[0] for line in lines] == list(OPTION_LABELS)
