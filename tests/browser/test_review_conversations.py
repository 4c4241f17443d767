"""A generated dialogue reviewed in Chromium: its turns are items like any other — the keyboard walks
the caption, then the turns in order, and accepting each saves it through the item save."""

import re

import pytest
from playwright.sync_api import expect

from corpus.models import Instruction, ItemStatus
from corpus.services.conversations import create_conversation
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory
from tests.workers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TURNS = [
    {
        "type": "long_vqa",
        "question": "What is in the picture?",
        "options": [],
        "answer": "A cat sits on a chair.",
    },
    {"type": "short_vqa", "question": "What colour is the cat?", "options": [], "answer": "grey"},
    {"type": "judgement", "question": "Is the cat asleep?", "options": [], "answer": "No"},
]


@pytest.fixture(autouse=True)
def _patient_with_a_loaded_machine(page):
    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


def test_the_keyboard_walks_and_accepts_a_dialogue_turn_by_turn(page, live_server, login, annotator):
    image = ImageFactory(domain=DomainFactory())
    caption = CaptionFactory(image=image, status=ItemStatus.DRAFT)
    conversation = create_conversation(image, turns=TURNS, model_name="fake/model")
    turns = list(conversation.turns.order_by("turn"))

    login(page, annotator)
    page.goto(f"{live_server.url}/review/")
    # Chromium applies autofocus at its next rendering step, which can come after "load" on a
    # busy machine: a key pressed before it goes to the body.
    expect(page.locator("#take-next")).to_be_focused()
    page.keyboard.press("Enter")  # "Take the next image" has the focus
    page.wait_for_url(f"{live_server.url}/review/image/{image.pk}/")
    expect(page.locator('#review-root[data-ready="true"]')).to_have_count(1)
    section = page.locator(f"#conversation-{conversation.pk}")
    expect(section.locator("article.item")).to_have_count(3)
    expect(section.locator(".turn-label")).to_have_text(["Turn 1", "Turn 2", "Turn 3"])

    expect(page.locator(f"#item-caption-{caption.pk}")).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("a")
    for turn in turns:
        box = page.locator(f"#item-instruction-{turn.pk}")
        expect(box).to_have_class(re.compile(r"\bcurrent\b"))
        page.keyboard.press("a")
    wait_for(
        lambda: (
            set(Instruction.objects.filter(conversation=conversation).values_list("status", flat=True))
            == {ItemStatus.ACCEPTED}
        ),
        15,
        what="every turn accepted",
    )
    assert list(conversation.turns.order_by("turn").values_list("version", flat=True)) == [2, 2, 2]
