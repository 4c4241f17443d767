"""Generated dialogues on the review page: their turns shown in order in their own section (not among
the single instructions), each saved, accepted or rejected through the item save like any instruction."""

import re

import pytest
from django.urls import reverse

from corpus.models import ItemStatus, Revision
from corpus.services.conversations import create_conversation
from review.services.queue import claim_next_image
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory

pytestmark = pytest.mark.django_db

TURNS = [
    {
        "type": "long_vqa",
        "question": "What is in the picture?",
        "options": [],
        "answer": "A cat sits on a chair.",
    },
    {"type": "short_vqa", "question": "What colour is the cat?", "options": [], "answer": "grey"},
    {"type": "judgement", "question": "Is the <b>cat</b> asleep?", "options": [], "answer": "No"},
]


@pytest.fixture
def dialogue(db):
    image = ImageFactory(domain=DomainFactory())
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    return create_conversation(image, turns=TURNS, model_name="fake/model")


def test_turns_show_in_order_in_the_conversation_section_and_not_among_single_instructions(
    client, annotator, dialogue
):
    client.force_login(annotator)
    assert claim_next_image(annotator) == dialogue.image_id
    html = client.get(reverse("review:image", args=[dialogue.image_id])).content.decode()
    section = html[html.index(f'id="conversation-{dialogue.pk}"') :]
    turns = list(dialogue.turns.order_by("turn"))
    positions = [section.index(f'id="item-instruction-{t.pk}"') for t in turns]
    assert positions == sorted(positions)
    # Each turn appears once on the page (not again in its type's group), and model text is escaped.
    for turn in turns:
        assert html.count(f'id="item-instruction-{turn.pk}"') == 1
    assert "&lt;b&gt;cat&lt;/b&gt;" in html and "<b>cat</b>" not in html
    assert re.search(r'data-undecided="3"', html)


def test_a_turn_is_accepted_through_the_item_save_with_a_revision_and_stale_saves_conflict(
    client, annotator, dialogue
):
    client.force_login(annotator)
    claim_next_image(annotator)
    turn = dialogue.turns.get(turn=2)
    form = {
        "expected_version": turn.version,
        "action": "accept",
        "type": turn.type,
        "question": turn.question,
        "answer": "dark grey",
    }
    url = reverse("review:save", args=["instruction", turn.pk])
    response = client.post(url, form, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content.decode()
    turn.refresh_from_db()
    assert (turn.status, turn.answer, turn.version, turn.conversation_id, turn.turn) == (
        ItemStatus.ACCEPTED,
        "dark grey",
        2,
        dialogue.pk,
        2,
    )
    revision = Revision.objects.get(instruction=turn, version=2)
    assert (revision.before["answer"], revision.after["answer"], revision.by) == (
        "grey",
        "dark grey",
        annotator,
    )
    stale = client.post(url, {**form, "answer": "black"}, HTTP_HX_REQUEST="true")
    assert stale.status_code == 409
    turn.refresh_from_db()
    assert turn.answer == "dark grey"
