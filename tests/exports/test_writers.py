"""The pure writers on a fixed small input, against golden files (UPDATE_GOLDEN=1 rewrites them) — and
the build's loop, the one place conversations are built, writing exactly those golden files from the rows
the database would give it."""

import io
import json
import os
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus.rules import OPTION_LABELS
from exports.archive import TarBuilder
from exports.formatting import ANSWER_HINT, IMAGE_TOKEN, format_question
from exports.models import ExportSpec
from exports.services.build import Sinks, stream_records
from exports.writers import Record
from exports.writers.llava import write_llava
from exports.writers.parquet import write_parquet
from exports.writers.sharegpt import write_sharegpt

GOLDEN = Path(__file__).parent / "golden"


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [
        turn
        for human, gpt in pairs
        for turn in ({"from": "human", "value": human}, {"from": "gpt", "value": gpt})
    ]


RECORDS = [
    Record(
        id="image-1",
        image="images/animals/aaaa.png",
        domain="animals",
        conversations=turns(
            ("<image>\nWhat animal is this?\nAnswer with a word or short phrase.", "a cat"),
            ("Which colour is its fur?\nA. black\nB. ginger\nAnswer with the option's letter.", "B"),
            ("Is it asleep?\nAnswer Yes or No.", "No"),
        ),
        instruction_ids=[1, 2, 3],
        types=["short_vqa", "multiple_choice", "judgement"],
    ),
    Record(
        id="image-2",
        image="images/charts/bbbb.jpg",
        domain="charts",
        conversations=turns(
            (
                '<image>\nDescribe the chart, including "quotes", ünïcode and a\ttab.',
                "It shows sales rising in 2024.",
            )
        ),
        instruction_ids=[7],
        types=["long_vqa"],
    ),
]
# The same two records as the database hands them to the build (rows.iter_images): per image its id,
# sha256, file, domain and instructions [id, revision, type, question, options, answer, checked,
# conversation, turn] (0, 0: not a dialogue's turn) —
# stored text, untrimmed, without hints or image token.
IMAGES = [
    [
        1,
        "aaaa",
        "images/aa/cat.png",
        "animals",
        [
            [1, 1, "short_vqa", "What animal is this? ", [], " a cat", False, 0, 0],
            [2, 3, "multiple_choice", " Which colour is its fur?", ["black", " ginger "], "B\n", False, 0, 0],
            [3, 1, "judgement", "Is it asleep?\n", [], " No", False, 0, 0],
        ],
    ],
    [
        2,
        "bbbb",
        "images/bb/chart.jpg",
        "charts",
        [
            [
                7,
                2,
                "long_vqa",
                'Describe the chart, including "quotes", ünïcode and a\ttab.',
                [],
                "It shows sales rising in 2024.",
                False,
                0,
                0,
            ]
        ],
    ],
]
IMAGE_BYTES = {"image-1": b"\x89PNG fake one", "image-2": b"\xff\xd8 fake two"}


def golden(name: str, data: bytes) -> bytes:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(data)
    return path.read_bytes()


def parquet_as_json(data: bytes) -> bytes:
    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    return json.dumps(
        [
            {**row, "image": {"path": row["image"]["path"], "bytes": row["image"]["bytes"].hex()}}
            for row in rows
        ],
        indent=1,
        ensure_ascii=False,
    ).encode()


def test_the_build_loop_writes_the_golden_files_byte_for_byte(settings, tmp_path):
    """The conversations the build makes (question formats, hints, the one image token, multi-turn
    records per image) give exactly the bytes the golden files hold."""
    for file_name, data in (
        ("images/aa/cat.png", IMAGE_BYTES["image-1"]),
        ("images/bb/chart.jpg", IMAGE_BYTES["image-2"]),
    ):
        path = Path(settings.MEDIA_ROOT) / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    spec = ExportSpec(
        name="golden",
        formats=["llava", "sharegpt", "parquet"],
        train_ratio=1.0,
        seed=0,
        image_mode="copy",
        conversation_mode="multi_turn",
    )
    tar = TarBuilder(tmp_path / "archive.tar")
    sinks = Sinks(tmp_path / "work", spec.formats, tar)
    with open(tmp_path / "index", "wb") as index_fp, open(tmp_path / "images", "wb") as images_fp:
        result = stream_records(
            iter(IMAGES),
            spec=spec,
            sinks=sinks,
            index_fp=index_fp,
            images_fp=images_fp,
            on_progress=lambda n: None,
        )
    sinks.close()
    tar.finish()
    assert dict(result.records) == {"train": 2} and not result.skipped
    with tarfile.open(tmp_path / "archive.tar") as archive:
        assert archive.extractfile("data/train.llava.json").read() == (GOLDEN / "llava.json").read_bytes()
    assert sinks.files["data/train.sharegpt.jsonl"].read_bytes() == (GOLDEN / "sharegpt.jsonl").read_bytes()
    parquet = sinks.files["data/train.parquet"].read_bytes()
    assert parquet_as_json(parquet) == (GOLDEN / "parquet.json").read_bytes()


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
    as_json = parquet_as_json(first.getvalue())
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
