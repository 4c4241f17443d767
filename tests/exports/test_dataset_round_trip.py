"""Round trip (issue 14, item 2): an export of ours, imported into an emptied corpus with
`corpus.services.dataset_import` and exported again with the same spec, gives the same records — the
same conversations about the same image files, in the same splits (the split is a hash of the image's
sha256) — in each of the three formats our exports write."""

import io
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus.models import DatasetImport, Domain, Image, Instruction, ItemStatus, Origin
from corpus.services.dataset_import import import_dataset
from corpus.services.dataset_turns import HINTS
from exports.formatting import ANSWER_HINT

from .conftest import archive_path, build

pytestmark = pytest.mark.django_db

DATA = {
    "llava": "data/{split}.llava.json",
    "sharegpt": "data/{split}.sharegpt.jsonl",
    "parquet": "data/{split}.parquet",
}


def records(archive: Path, fmt: str, split: str) -> list[dict]:
    """The records of one data file of an archive, without their ids (those are the database's)."""
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        name = DATA[fmt].format(split=split)
        if name not in names:
            return []
        data = tar.extractfile(name).read()
    if fmt == "llava":
        rows = json.loads(data)
    elif fmt == "sharegpt":
        rows = [json.loads(line) for line in data.splitlines()]
    else:
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        for row in rows:
            row.pop("instruction_ids")
    for row in rows:
        row.pop("id")
    return rows


def empty_the_corpus() -> None:
    Instruction.objects.all().delete()
    DatasetImport.objects.all().delete()
    Image.objects.all().delete()


def test_our_hints_are_the_ones_the_import_strips():
    assert {hint: t for t, hint in ANSWER_HINT.items() if hint}.items() <= HINTS.items()


@pytest.mark.parametrize("conversation_mode", ["multi_turn", "per_instruction"])
@pytest.mark.parametrize("fmt", ["llava", "sharegpt", "parquet"])
def test_export_import_export_gives_the_same_records(corpus, make_spec, tmp_path, fmt, conversation_mode):
    spec = make_spec(
        "round-trip",
        selection={"domains": ["animals"]},
        train_ratio=0.5,
        seed=corpus["seed"],
        conversation_mode=conversation_mode,
    )
    first = build(spec)
    before = {split: records(archive_path(first), fmt, split) for split in ("train", "validation")}
    assert sum(map(len, before.values())) > 0
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive_path(first)) as tar:
        tar.extractall(unpacked, filter="data")

    empty_the_corpus()
    animals = Domain.objects.get(slug="animals")
    for split in ("train", "validation"):
        data_file = unpacked / DATA[fmt].format(split=split)
        if data_file.exists():
            done = import_dataset(
                data_file, format=fmt, domain=animals, name=f"round-trip {split}", status=ItemStatus.ACCEPTED
            )
            assert done.status == "done" and done.summary["skipped_records"] == 0, done.summary
            assert done.summary["flagged"] == 0
    assert set(Instruction.objects.values_list("origin", flat=True)) == {Origin.IMPORTED}

    second = build(spec)
    after = {split: records(archive_path(second), fmt, split) for split in ("train", "validation")}
    assert after == before
