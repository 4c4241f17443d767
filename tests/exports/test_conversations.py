"""Generated dialogues in the exports: one multi-turn record per dialogue in every format, its turns in
order up to the first one not selected; the image's single instructions keep their own records."""

import io
import json

import pyarrow.parquet as pq
import pytest

from corpus.models import Instruction, ItemStatus
from corpus.services.conversations import create_conversation
from corpus.services.items import update_item
from exports.models import VersionStatus
from tests.corpus.factories import DomainFactory, ImageFactory, InstructionFactory

from .conftest import build, read_member

pytestmark = pytest.mark.django_db

TURNS = [
    {
        "type": "long_vqa",
        "question": "What is in the picture?",
        "options": [],
        "answer": "A cat sits on a chair.",
    },
    {"type": "short_vqa", "question": "What colour is it?", "options": [], "answer": "grey"},
    {
        "type": "multiple_choice",
        "question": "Where is the cup?",
        "options": ["on the table", "on the floor"],
        "answer": "A",
    },
    {"type": "judgement", "question": "Is the cat asleep?", "options": [], "answer": "No"},
]


def decide(turn: Instruction, status: str, by) -> None:
    update_item(turn, by=by, expected_version=turn.version, status=status, reason="wrong")


@pytest.fixture
def dialogues(db, admin_user):
    """Image 1: a single accepted instruction and a dialogue of 4 turns, all accepted. Image 2: a
    dialogue whose third turn is still a draft. Image 3: a dialogue whose first turn was rejected."""
    domain = DomainFactory(slug="animals")
    images = [ImageFactory(domain=domain) for _ in range(3)]
    single = InstructionFactory(image=images[0], type="short_vqa", status=ItemStatus.ACCEPTED)
    made = [create_conversation(image, turns=TURNS, model_name="fake/model") for image in images]
    for number, conversation in enumerate(made):
        for turn in conversation.turns.order_by("turn"):
            if number == 1 and turn.turn == 3:
                continue  # left a draft
            rejected = number == 2 and turn.turn == 1
            decide(turn, ItemStatus.REJECTED if rejected else ItemStatus.ACCEPTED, admin_user)
    return {"images": images, "single": single, "conversations": made}


def records(version, fmt: str) -> list[dict]:
    data = read_member(version, {"llava": "data/train.llava.json", "sharegpt": "data/train.sharegpt.jsonl",
                                 "parquet": "data/train.parquet"}[fmt])  # fmt: skip
    if fmt == "llava":
        return json.loads(data)
    if fmt == "sharegpt":
        return [json.loads(line) for line in data.decode().splitlines()]
    return pq.read_table(io.BytesIO(data)).to_pylist()


@pytest.mark.parametrize("mode", ["multi_turn", "per_instruction"])
def test_each_dialogue_is_one_multi_turn_record_in_every_format(dialogues, make_spec, mode):
    version = build(make_spec(train_ratio=1.0, conversation_mode=mode))
    assert version.status == VersionStatus.DONE, version.error
    full, cut, _rejected_first = dialogues["conversations"]
    for fmt in ("llava", "sharegpt", "parquet"):
        by_id = {r["id"]: r for r in records(version, fmt)}
        # The third dialogue starts with a rejected turn: nothing of it is exported.
        assert set(by_id) == {
            f"conversation-{full.pk}",
            f"conversation-{cut.pk}",
            f"image-{dialogues['images'][0].pk}"
            if mode == "multi_turn"
            else f"instruction-{dialogues['single'].pk}",
        }, fmt
        turns = by_id[f"conversation-{full.pk}"]["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * 4
        assert turns[0]["value"].startswith("<image>\n")
        assert sum(t["value"].count("<image>") for t in turns) == 1
        assert [t["value"] for t in turns[1::2]] == ["A cat sits on a chair.", "grey", "A", "No"]
        assert "A. on the table" in turns[4]["value"]  # the MCQ turn is formatted like any MCQ
        # Turn 3 of the second dialogue is a draft: the record ends before it.
        assert len(by_id[f"conversation-{cut.pk}"]["conversations"]) == 4
        # The image's own record holds its single instruction only, not the dialogue's turns.
        own = [r for r in by_id.values() if not r["id"].startswith("conversation-")]
        assert len(own[0]["conversations"]) == 2
    parquet = {r["id"]: r for r in records(version, "parquet")}
    ids = parquet[f"conversation-{full.pk}"]["instruction_ids"]
    assert ids == list(full.turns.order_by("turn").values_list("pk", flat=True))
    assert parquet[f"conversation-{full.pk}"]["types"] == [t["type"] for t in TURNS]


def test_the_manifest_counts_the_exported_turns_only(dialogues, make_spec):
    version = build(make_spec(train_ratio=1.0))
    manifest = json.loads(read_member(version, "manifest.json"))
    listed = {row[0] for row in manifest["instructions"]}
    full, cut, rejected_first = dialogues["conversations"]
    assert set(full.turns.values_list("pk", flat=True)) <= listed
    assert set(cut.turns.filter(turn__lte=2).values_list("pk", flat=True)) <= listed
    assert not set(cut.turns.filter(turn__gte=3).values_list("pk", flat=True)) & listed
    assert not set(rejected_first.turns.values_list("pk", flat=True)) & listed
    assert version.counts["instructions"] == 1 + 4 + 2


def test_an_image_exported_only_through_its_dialogue_gets_its_caption_record(dialogues, make_spec):
    from tests.corpus.factories import CaptionFactory

    with_single, dialogue_only, _rejected_first = dialogues["images"]
    captions = [CaptionFactory(image=i, status=ItemStatus.ACCEPTED) for i in (with_single, dialogue_only)]
    version = build(make_spec(train_ratio=1.0, include_captions=True))
    assert version.status == VersionStatus.DONE, version.error
    ids = {r["id"] for r in records(version, "llava")}
    assert {f"caption-{c.pk}" for c in captions} <= ids
    assert f"conversation-{dialogues['conversations'][1].pk}" in ids
