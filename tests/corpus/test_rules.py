import pytest

from corpus.rules import (
    InstructionRuleError,
    InstructionType,
    check_instruction,
    normalize_answer,
    validate_instruction,
)

T = InstructionType


def rules_broken(type_, question="What is shown?", options=None, answer="x"):
    return {v.rule for v in check_instruction(type_, question, options, answer)}


@pytest.mark.parametrize("options,answer", [(["cat", "dog"], "A"), (["a", "b", "c", "d", "e", "f"], "F")])
def test_mcq_with_two_to_six_distinct_options_and_a_letter_answer_is_accepted(options, answer):
    assert check_instruction(T.MULTIPLE_CHOICE, "Which animal?", options, answer) == []


@pytest.mark.parametrize(
    "options,answer,rule",
    [
        (["cat"], "A", "mcq_option_count"),
        (["a", "b", "c", "d", "e", "f", "g"], "A", "mcq_option_count"),
        (["cat", "Cat"], "A", "mcq_duplicate_option"),
        (["cat", "dog"], "C", "mcq_answer_not_an_option"),
        (["cat", "dog"], "cat", "mcq_answer_not_an_option"),
        (["cat", "dog", "cow"], "AB", "mcq_answer_not_an_option"),
        (["cat", "dog", "cow"], "ABC", "mcq_answer_not_an_option"),
        (["cat", " "], "A", "mcq_empty_option"),
    ],
)
def test_mcq_rules_refuse_bad_options_and_answers(options, answer, rule):
    assert rule in rules_broken(T.MULTIPLE_CHOICE, options=options, answer=answer)


def test_judgement_answer_must_be_yes_or_no():
    assert check_instruction(T.JUDGEMENT, "Is there a cat?", [], "Yes") == []
    assert check_instruction(T.JUDGEMENT, "Is there a cat?", [], "No") == []
    assert "judgement_yes_no" in rules_broken(T.JUDGEMENT, answer="Maybe")


def test_short_vqa_answer_is_bounded():
    assert check_instruction(T.SHORT_VQA, "What colour?", [], "dark red") == []
    assert "short_answer_too_long" in rules_broken(
        T.SHORT_VQA, answer="one two three four five six seven eight nine"
    )
    assert "short_answer_too_long" in rules_broken(T.SHORT_VQA, answer="red\nblue")


def test_long_vqa_answer_must_be_a_sentence():
    assert (
        check_instruction(T.LONG_VQA, "Describe it.", [], "A tabby cat sits on a wooden floor near a window.")
        == []
    )
    assert "long_answer_not_a_sentence" in rules_broken(T.LONG_VQA, answer="a cat")


def test_non_mcq_types_refuse_options():
    assert "options_not_allowed" in rules_broken(T.JUDGEMENT, options=["Yes", "No"], answer="Yes")


def test_unknown_type_and_empty_fields_are_refused():
    assert "unknown_type" in rules_broken("essay")
    assert "required" in rules_broken(T.SHORT_VQA, question="", answer="")


def test_violation_message_names_field_and_rule():
    with pytest.raises(InstructionRuleError) as err:
        validate_instruction(T.MULTIPLE_CHOICE, "Which?", ["cat", "dog"], "E")
    assert err.value.as_dict() == {"answer": [err.value.violations[0].message]}
    assert err.value.violations[0].message.startswith(
        "answer: must be the letter of one of the options (A, B)"
    )


@pytest.mark.parametrize(
    "type_,raw,canonical",
    [
        (T.JUDGEMENT, "yes.", "Yes"),
        (T.JUDGEMENT, " NO ", "No"),
        (T.MULTIPLE_CHOICE, "(b)", "B"),
        (T.MULTIPLE_CHOICE, "C. a dog", "C"),
    ],
)
def test_unambiguous_answers_are_normalised(type_, raw, canonical):
    assert normalize_answer(type_, raw) == canonical
