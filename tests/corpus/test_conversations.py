"""A dialogue in the corpus: stored with its turns as instructions (rules, revisions, the review queue),
turn numbers unique per dialogue, listed by the instructions API."""

import pytest
from django.db import IntegrityError, transaction

from corpus.models import Instruction, ItemStatus, ReviewStatus, Revision
from corpus.services.conversations import create_conversation
from tests.corpus.factories import DomainFactory, ImageFactory

pytestmark = pytest.mark.django_db

TURNS = [
    {
        "type": "long_vqa",
        "question": "What is in the picture?",
        "options": [],
        "answer": "A cat sits on a chair.",
    },
    {"type": "short_vqa", "question": "What colour is the cat?", "options": [], "answer": "grey"},
    {"type": "judgement", "question": "Is the cat asleep?", "options": [], "answer": "maybe"},
]


@pytest.fixture
def dialogue():
    return create_conversation(ImageFactory(domain=DomainFactory()), turns=TURNS, model_name="fake/model")


def test_turns_are_drafts_with_a_first_revision_and_broken_ones_are_kept_invalid(dialogue):
    turns = list(dialogue.turns.order_by("turn"))
    assert [(t.turn, t.status) for t in turns] == [
        (1, ItemStatus.DRAFT),
        (2, ItemStatus.DRAFT),
        (3, ItemStatus.INVALID),
    ]
    assert "Yes or No" in turns[2].reason
    assert all(Revision.objects.filter(instruction=t, version=1).exists() for t in turns)
    dialogue.image.refresh_from_db()
    assert dialogue.image.review_status == ReviewStatus.PENDING


def test_a_turn_number_is_taken_once_per_dialogue_and_needs_its_dialogue(dialogue):
    first = dialogue.turns.get(turn=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Instruction.objects.filter(pk=dialogue.turns.get(turn=2).pk).update(turn=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Instruction.objects.filter(pk=first.pk).update(conversation=None)


def test_the_instructions_api_lists_a_dialogues_turns_with_their_numbers(client, annotator, dialogue):
    client.force_login(annotator)
    response = client.get(f"/api/v1/instructions/?conversation={dialogue.pk}")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["conversation"], r["turn"]) for r in rows] == [(dialogue.pk, n) for n in (1, 2, 3)]
    assert client.get("/api/v1/instructions/?conversation=abc").status_code == 400
