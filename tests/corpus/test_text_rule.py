"""The one text rule (corpus.rules): no control characters but tab, line feed and carriage return —
the same rule in the instruction rules, the services, the API serializers and the page forms."""

import re

import pytest
from django.core.exceptions import ValidationError

from corpus.forms import DomainForm, ImportForm, SeedQuestionForm
from corpus.models import Domain, SeedQuestion
from corpus.rules import (
    check_instruction,
    check_text,
    find_control_character,
    refuse_control_characters,
)
from tests.corpus.test_pages import _edit_payload

pytestmark = pytest.mark.django_db

CONTROL = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]]


@pytest.mark.parametrize("char", CONTROL)
def test_every_control_character_is_refused(char):
    assert find_control_character(f"a{char}b") == char
    assert check_text("text", f"a{char}b").rule == "control_character"
    with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X}"):
        refuse_control_characters(f"a{char}b")
    rules = {v.rule for v in check_instruction("short_vqa", f"What is{char} it?", [], "a cat")}
    assert rules == {"control_character"}


@pytest.mark.parametrize(
    "text", ["tab\there", "line\nfeed", "carriage\r\nreturn", "é ü 漢字 😀", "\u00a0nbsp", "\u200bzwsp"]
)
def test_whitespace_and_other_text_is_allowed(text):
    assert find_control_character(text) is None and check_text("text", text) is None
    refuse_control_characters(text)


def test_the_message_names_the_field_and_the_character():
    violation = check_text("reason", "wrong\x00")
    assert violation.message == (
        "reason: contains the control character U+0000; only tab, line feed and carriage return are allowed"
    )
    assert check_text("options", ["fine", "bad\x1b"]).field == "options"


@pytest.mark.parametrize("field", ["name", "description", "guidelines"])
def test_the_domain_form_refuses_control_characters(field):
    domain = Domain.objects.get(slug="ocr")
    data = {
        "name": domain.name,
        "description": "d",
        "guidelines": "g",
        "is_active": True,
        field: "bad\x00 text",
    }
    form = DomainForm(data, instance=domain)
    assert not form.is_valid() and field in form.errors


def test_a_seed_question_with_a_control_character_is_refused_with_one_clear_message():
    form = SeedQuestionForm({"type": "short_vqa", "question": "What is\x1b shown?", "answer": "a cat"})
    assert not form.is_valid()
    assert len(form.errors["question"]) == 1 and "U+001B" in form.errors["question"][0]
    options = SeedQuestionForm(
        {"type": "multiple_choice", "question": "Which?", "options_text": "red\nbl\x07ue", "answer": "A"}
    )
    assert not options.is_valid() and "options_text" in options.errors


@pytest.mark.parametrize("field", ["source", "license", "prior_knowledge"])
def test_the_import_form_refuses_control_characters_in_image_metadata(field):
    form = ImportForm({"domain": "ocr", field: "bad\x1ftext"})
    assert not form.is_valid() and field in form.errors


def test_the_domain_edit_page_refuses_a_control_character_and_saves_nothing(client, admin_user):
    domain = Domain.objects.get(slug="ocr")
    before = domain.seed_questions.count()
    client.force_login(admin_user)
    payload = _edit_payload(
        domain, [{"type": "judgement", "question": "Is it\x00 legible?", "answer": "Yes"}]
    )
    payload["guidelines"] = "Read\x0b carefully."
    response = client.post("/domains/ocr/edit/", payload)
    assert response.status_code in (200, 400)
    html = response.content.decode()
    assert "control character U+000B" in html and "U+0000" in html
    domain.refresh_from_db()
    assert "\x0b" not in domain.guidelines and SeedQuestion.objects.filter(domain=domain).count() == before


# --- the services: nothing unusable is written -----------------------------------------------------------


def test_update_item_refuses_unusable_changes_and_writes_nothing(annotator):
    from corpus.models import Revision
    from corpus.rules import InstructionRuleError
    from corpus.services.items import update_item
    from tests.corpus.factories import InstructionFactory

    item = InstructionFactory(type="short_vqa", question="What is it?", answer="a cat", options=[])
    for changes, named in [
        ({"colour": "red"}, "colour: an instruction has no such field"),
        ({"answer": 42}, "answer: must be a text"),
        ({"options": "a, b"}, "options: must be a list of texts"),
        ({"question": "What\x00 is it?"}, "question: contains the control character U+0000"),
    ]:
        with pytest.raises(InstructionRuleError, match=re.escape(named)):
            update_item(
                item, by=annotator, expected_version=1, changes=changes, status="rejected", reason="x"
            )
    with pytest.raises(
        InstructionRuleError, match=re.escape("reason: contains the control character U+0007")
    ):
        update_item(item, by=annotator, expected_version=1, status="rejected", reason="bad\x07")
    item.refresh_from_db()
    assert item.version == 1 and not Revision.objects.filter(instruction=item).exists()


def test_a_persons_instruction_is_checked_as_typed_before_cleaning(annotator):
    from corpus.models import Instruction, Origin
    from corpus.rules import InstructionRuleError
    from corpus.services.items import create_instruction
    from tests.corpus.factories import ImageFactory

    image = ImageFactory()
    with pytest.raises(InstructionRuleError, match="U\\+001F"):
        # strip() would remove \x1f (Python counts it as whitespace): refused as typed all the same
        create_instruction(
            image, type="judgement", question="Is it red?\x1f", answer="Yes", origin=Origin.PERSON
        )
    assert not Instruction.objects.exists()


def test_model_output_with_a_nul_is_kept_as_invalid_and_storable():
    from corpus.models import Instruction, ItemStatus
    from corpus.services.items import create_instruction
    from tests.corpus.factories import ImageFactory

    made = create_instruction(ImageFactory(), type="short_vqa", question="What is\x00 it?", answer="a cat")
    stored = Instruction.objects.get(pk=made.pk)
    assert stored.status == ItemStatus.INVALID and "U+0000" in stored.reason
    assert stored.question == "What is\ufffd it?"
