import pytest

from corpus.models import ItemStatus, Origin, ReviewStatus, RevisionAction
from corpus.rules import InstructionRuleError, InstructionType
from corpus.services.items import (
    InvalidTransition,
    StaleVersion,
    create_caption,
    create_instruction,
    update_item,
)
from tests.corpus.factories import ImageFactory

pytestmark = pytest.mark.django_db


def test_model_output_breaking_the_rules_is_kept_as_invalid_with_the_reason():
    image = ImageFactory()
    item = create_instruction(
        image,
        type=InstructionType.MULTIPLE_CHOICE,
        question="Which?",
        options=["A. cat", "B. dog"],
        answer="E",
    )
    assert item.status == ItemStatus.INVALID
    assert "answer: must be the letter" in item.reason
    assert item.options == ["cat", "dog"]
    assert item.revisions.get().action == RevisionAction.INVALIDATED


def test_a_persons_instruction_breaking_the_rules_is_refused(annotator):
    with pytest.raises(InstructionRuleError):
        create_instruction(
            ImageFactory(),
            type=InstructionType.JUDGEMENT,
            question="Cat?",
            answer="Perhaps",
            origin=Origin.PERSON,
            by=annotator,
        )


def test_new_drafts_put_the_image_in_the_review_queue():
    image = ImageFactory()
    assert image.review_status == ReviewStatus.NEW
    create_caption(image, text="A cat.")
    image.refresh_from_db()
    assert image.review_status == ReviewStatus.PENDING


def test_edit_with_the_loaded_version_bumps_it_and_keeps_a_revision(annotator):
    item = create_instruction(
        ImageFactory(), type=InstructionType.SHORT_VQA, question="Colour?", answer="red"
    )
    saved = update_item(
        item, by=annotator, expected_version=1, changes={"answer": "blue"}, status=ItemStatus.ACCEPTED
    )
    assert (saved.version, saved.answer, saved.status) == (2, "blue", ItemStatus.ACCEPTED)
    rev = saved.revisions.get(version=2)
    assert rev.by == annotator and rev.before["answer"] == "red" and rev.after["answer"] == "blue"
    assert rev.action == RevisionAction.ACCEPTED


def test_stale_edit_is_refused_and_overwrites_nothing(annotator, second_annotator):
    item = create_instruction(
        ImageFactory(), type=InstructionType.SHORT_VQA, question="Colour?", answer="red"
    )
    update_item(item, by=annotator, expected_version=1, changes={"answer": "blue"})
    with pytest.raises(StaleVersion) as err:
        update_item(item, by=second_annotator, expected_version=1, changes={"answer": "green"})
    assert err.value.current.answer == "blue"
    item.refresh_from_db()
    assert (item.answer, item.version) == ("blue", 2)


def test_edit_breaking_the_rules_is_refused(annotator):
    item = create_instruction(ImageFactory(), type=InstructionType.JUDGEMENT, question="Cat?", answer="Yes")
    with pytest.raises(InstructionRuleError):
        update_item(item, by=annotator, expected_version=1, changes={"answer": "Maybe"})
    item.refresh_from_db()
    assert (item.answer, item.version) == ("Yes", 1)


def test_moves_outside_the_table_are_refused(annotator):
    item = create_instruction(ImageFactory(), type=InstructionType.JUDGEMENT, question="Cat?", answer="Yes")
    with pytest.raises(InvalidTransition):
        update_item(item, by=annotator, expected_version=1, status=ItemStatus.INVALID)
