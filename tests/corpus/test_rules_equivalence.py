"""check_instruction (with its fast path for valid rows, added because exports call it per row) must
return exactly what the implementation before the fast path returned — for every type, valid and
invalid, including odd inputs. The previous implementation is kept here verbatim as the reference, with
the one rule added since (RULES_VERSION 2: control characters) written into it the plain way."""

import itertools
import random

import pytest

from corpus.rules import (
    _TYPE_LABELS,
    _TYPE_VALUES,
    ANSWER_MAX_CHARS,
    ANSWER_RULE,
    JUDGEMENT_ANSWERS,
    LONG_ANSWER_MIN_WORDS,
    MCQ_MAX_OPTIONS,
    MCQ_MIN_OPTIONS,
    OPTION_LABELS,
    OPTION_MAX_CHARS,
    QUESTION_MAX_CHARS,
    SHORT_ANSWER_MAX_CHARS,
    SHORT_ANSWER_MAX_WORDS,
    InstructionType,
    RuleViolation,
    check_instruction,
)

CONTROL = {chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]} - {"\t", "\n", "\r"}


def _control(text: str) -> str | None:
    return next((c for c in text if c in CONTROL), None)


def _control_message(field: str, char: str) -> str:
    return (
        f"{field}: contains the control character U+{ord(char):04X}; only tab, line feed and carriage "
        "return are allowed"
    )


# ---- the implementation before the fast path (commit 45266dd), unchanged but for its name and the -------
# ---- control-character rule of RULES_VERSION 2 ------------------------------------------------------------
def reference_check(type_: str, question: str, options: list[str] | None, answer: str) -> list[RuleViolation]:
    """Every rule the instruction breaks; an empty list means it is valid. Does not normalise."""
    violations: list[RuleViolation] = []

    def fail(field: str, rule: str, message: str) -> None:
        violations.append(RuleViolation(field, rule, message))

    if type_ not in _TYPE_VALUES:
        fail("type", "unknown_type", f"type: '{type_}' is not one of {', '.join(InstructionType.values)}")
        return violations
    label = _TYPE_LABELS[type_]
    question = question or ""
    answer = answer or ""
    options = list(options or [])

    if not question.strip():
        fail("question", "required", "question: must not be empty")
    elif len(question) > QUESTION_MAX_CHARS:
        fail("question", "too_long", f"question: must be at most {QUESTION_MAX_CHARS} characters")
    elif _control(question):
        fail("question", "control_character", _control_message("question", _control(question)))
    if not answer.strip():
        fail("answer", "required", "answer: must not be empty")
    elif len(answer) > ANSWER_MAX_CHARS:
        fail("answer", "too_long", f"answer: must be at most {ANSWER_MAX_CHARS} characters")
    elif _control(answer):
        fail("answer", "control_character", _control_message("answer", _control(answer)))

    if type_ == InstructionType.MULTIPLE_CHOICE:
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            fail("options", "not_a_list", "options: must be a list of texts")
            return violations
        if not MCQ_MIN_OPTIONS <= len(options) <= MCQ_MAX_OPTIONS:
            fail(
                "options",
                "mcq_option_count",
                f"options: a Multiple-Choice question needs {MCQ_MIN_OPTIONS} to {MCQ_MAX_OPTIONS} options "
                f"(got {len(options)})",
            )
        cleaned = [o.strip() for o in options]
        if any(not o for o in cleaned):
            fail("options", "mcq_empty_option", "options: every option must have text")
        elif any(len(o) > OPTION_MAX_CHARS for o in cleaned):
            fail("options", "too_long", f"options: each option must be at most {OPTION_MAX_CHARS} characters")
        elif any(_control(o) for o in options):
            fail("options", "control_character", _control_message("options", _control("".join(options))))
        lowered = [o.lower() for o in cleaned]
        if len(set(lowered)) != len(lowered):
            fail("options", "mcq_duplicate_option", "options: the options must be distinct")
        # One change since 45266dd, made in both: a list of letters, so "AB" is no longer "in" "ABCD".
        labels = list(OPTION_LABELS[: min(len(options), MCQ_MAX_OPTIONS)])
        if answer.strip() and answer.strip() not in labels:
            fail(
                "answer",
                "mcq_answer_not_an_option",
                f"answer: must be the letter of one of the options ({', '.join(labels) or 'none given'}), "
                f"got '{answer.strip()[:20]}'",
            )
        return violations

    if options:
        fail("options", "options_not_allowed", f"options: a {label} instruction has no options")

    if not answer.strip():
        return violations
    if type_ == InstructionType.JUDGEMENT:
        if answer.strip() not in JUDGEMENT_ANSWERS:
            fail(
                "answer",
                "judgement_yes_no",
                f"answer: a Judgement answer must be Yes or No, got '{answer[:20]}'",
            )
    elif type_ == InstructionType.SHORT_VQA:
        words = answer.split()
        if (
            "\n" in answer.strip()
            or len(words) > SHORT_ANSWER_MAX_WORDS
            or len(answer.strip()) > SHORT_ANSWER_MAX_CHARS
        ):
            fail("answer", "short_answer_too_long", f"answer: a Short VQA answer {ANSWER_RULE[type_]}")
    elif type_ == InstructionType.LONG_VQA:
        stripped = answer.strip()
        if len(stripped.split()) < LONG_ANSWER_MIN_WORDS or stripped[-1] not in ".!?\"')":
            fail("answer", "long_answer_not_a_sentence", f"answer: a Long VQA answer {ANSWER_RULE[type_]}")
    return violations


# ---- inputs ---------------------------------------------------------------------------------------------

TYPES = [*InstructionType.values, *InstructionType, "", "essay", "Judgement", None]
QUESTIONS = [
    "What is on the table?",
    "  What colour is the car?  ",
    "",
    "   ",
    "\n\t",
    "q" * QUESTION_MAX_CHARS,
    "q" * (QUESTION_MAX_CHARS + 1),
    " " + "q" * (QUESTION_MAX_CHARS - 1) + " ",
    "What is\x00 on the table?",
    "Is it red?\x7f",
    "Which\u0085 one?",
    "Two\r\nlines\tof a question?",
    "\x0b",
    None,
]
OPTIONS = [
    None,
    [],
    "",
    [""],
    ["a cat"],
    ["a cat", "a dog"],
    ["a cat", "A Cat "],
    [" a cat ", "a dog", "a bird"],
    ["one", "two", "three", "four", "five", "six"],
    ["one", "two", "three", "four", "five", "six", "seven"],
    ["o" * OPTION_MAX_CHARS, "p"],
    ["o" * (OPTION_MAX_CHARS + 1), "p"],
    [" " + "o" * OPTION_MAX_CHARS + " ", "p"],
    ["a cat", "   "],
    ["a cat", 3],
    ("a cat", "a dog"),
    "ab",
    ["ä", "Ä"],
    ["a cat", "a\x00dog"],
    ["a\x1bcat", "a dog", "a bird"],
    ["a\tcat", "a dog"],
]
ANSWERS = [
    "",
    "  ",
    "A",
    " B ",
    "b",
    "C",
    "D",
    "F",
    "G",
    "AB",
    "BC",
    "A. a cat",
    "Yes",
    "No",
    " No\n",
    "yes",
    "Yes.",
    "Maybe",
    "Yes" + " " * ANSWER_MAX_CHARS,
    "a folded newspaper",
    "one two three four five six seven eight",
    "one two three four five six seven eight nine",
    "x" * SHORT_ANSWER_MAX_CHARS,
    "x" * (SHORT_ANSWER_MAX_CHARS + 1),
    "two\nlines",
    "Two cyclists wait at the crossing near a bench.",
    "Two cyclists wait at the crossing near a bench",
    "Five words end right here.",
    "He said it was 'a long day at work'",
    'She answered "six words are here now"',
    "(Six words of an aside here.)",
    "Yes\x00",
    "B\x08",
    "a red\x9f car",
    "Two cyclists wait at\u00a0the crossing\r\nnear a bench.",
    "Six words but spaced out  !",
    "w " * (ANSWER_MAX_CHARS // 2 + 1) + ".",
    None,
]


def outcome(check, *args):
    try:
        return check(*args)
    except Exception as exc:  # both implementations must fail the same way on unusable input
        return type(exc)


def test_every_combination_of_the_table_gives_the_previous_result():
    combinations = itertools.product(TYPES, QUESTIONS, OPTIONS, ANSWERS)
    checked = valid = 0
    for type_, question, options, answer in combinations:
        options_copy = list(options) if isinstance(options, list) else options
        expected = outcome(reference_check, type_, question, options, answer)
        assert outcome(check_instruction, type_, question, options_copy, answer) == expected, (
            type_,
            question,
            options,
            answer,
        )
        checked += 1
        valid += expected == []
    # The table reaches both sides of every rule: many valid and many invalid combinations.
    assert checked > 50_000 and 500 < valid < checked - 1_000


def _random_text(rng: random.Random) -> str:
    pieces = [
        "",
        " ",
        "\n",
        "\t",
        "a",
        "B",
        "Yes",
        "No",
        "cat",
        "é",
        ".",
        "?",
        "!",
        ")",
        "'",
        '"',
        "A.",
        "(c)",
        "\x00",
        "\x1f",
        "\x85",
        "\r",
        "\u00a0",
    ]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))


@pytest.mark.parametrize("seed", range(4))
def test_random_instructions_give_the_previous_result(seed):
    rng = random.Random(seed)
    for _ in range(20_000):
        type_ = rng.choice(TYPES)
        options = rng.choice([None, [], [_random_text(rng) for _ in range(rng.randint(0, 8))]])
        question = rng.choice([_random_text(rng), rng.choice(QUESTIONS)])
        answer = rng.choice([_random_text(rng), rng.choice(ANSWERS), rng.choice(OPTION_LABELS)])
        expected = outcome(reference_check, type_, question, options, answer)
        assert outcome(check_instruction, type_, question, options, answer) == expected, (
            type_,
            question,
            options,
            answer,
        )


def test_the_fast_path_accepts_the_usual_valid_rows():
    # A sanity check that the table above holds valid rows of every type (so the fast path is exercised).
    assert check_instruction("judgement", "Is it red?", [], "Yes") == []
    assert check_instruction("short_vqa", "What is it?", [], "a red car") == []
    assert check_instruction("long_vqa", "Describe it.", [], "A red car waits at the crossing.") == []
    assert check_instruction("multiple_choice", "Which?", ["a", "b", "c"], "C") == []
    assert check_instruction("multiple_choice", "Which?", ["a", "b", "c"], "D") == [
        RuleViolation(
            "answer",
            "mcq_answer_not_an_option",
            "answer: must be the letter of one of the options (A, B, C), got 'D'",
        )
    ]
