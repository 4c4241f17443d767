"""The rules of the four instruction types — the one place they live — and the one rule every text a
person or a file sends in obeys (no control characters).

Used by the model-output parser (generation), the review forms and the API (review, corpus), the image
import and the exporters alike. `check_instruction` returns the violations; `validate_instruction` raises
them. `find_control_character` / `check_text` / `refuse_control_characters` are the text rule, for
anything that is not an instruction (captions, reasons, notes, guidelines, image metadata, file names).
"""

import re
import string
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import models


class InstructionType(models.TextChoices):
    JUDGEMENT = "judgement", "Judgement"
    MULTIPLE_CHOICE = "multiple_choice", "Multiple-Choice"
    LONG_VQA = "long_vqa", "Long VQA"
    SHORT_VQA = "short_vqa", "Short VQA"


# Raise by one whenever what the rules accept changes (tests/corpus/test_rules_version.py fails until
# you do): instructions found valid under an older version are checked again by the exports.
RULES_VERSION = 3  # 2: control characters are refused; 3: lone surrogates too

MCQ_MIN_OPTIONS = 2
MCQ_MAX_OPTIONS = 6
OPTION_LABELS = string.ascii_uppercase[:MCQ_MAX_OPTIONS]  # "ABCDEF"
JUDGEMENT_ANSWERS = ("Yes", "No")
SHORT_ANSWER_MAX_WORDS = 8
SHORT_ANSWER_MAX_CHARS = 80
LONG_ANSWER_MIN_WORDS = 6
QUESTION_MAX_CHARS = 2000
OPTION_MAX_CHARS = 500
ANSWER_MAX_CHARS = 5000

# What each type asks of the answer, in words (shown in forms, prompts and error messages).
ANSWER_RULE = {
    InstructionType.JUDGEMENT: "must be Yes or No",
    InstructionType.MULTIPLE_CHOICE: "must be the letter of one of the options",
    InstructionType.SHORT_VQA: f"must be a word or short phrase (at most {SHORT_ANSWER_MAX_WORDS} words, "
    f"{SHORT_ANSWER_MAX_CHARS} characters, one line)",
    InstructionType.LONG_VQA: f"must be a full sentence or more (at least {LONG_ANSWER_MIN_WORDS} words, "
    "ending with . ! or ?)",
}


# --- the text rule: no control characters ---------------------------------------------------------
# Unicode's control characters (category Cc: U+0000–U+001F, U+007F–U+009F) but tab, line feed and
# carriage return. NUL cannot even be stored in a PostgreSQL text column; the others are invisible on a
# page, break JSONL consumers and tokenizers, and never belong in a caption or an answer. Lone surrogates
# (U+D800–U+DFFF, which JSON's \u escapes can produce) cannot be encoded as UTF-8 at all.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_find_control = CONTROL_CHARACTERS.search


def find_control_character(text: str) -> str | None:
    """The first control character of `text` that the rule refuses, or None when there is none."""
    match = _find_control(text)
    return match.group() if match else None


def control_character_message(field: str, char: str) -> str:
    """What a person reads when `field` holds the control character `char`."""
    return (
        f"{field}: contains the control character U+{ord(char):04X}; only tab, line feed and carriage "
        "return are allowed"
    )


def refuse_control_characters(value) -> None:
    """A validator for Django form fields, model fields and DRF fields (DRF turns Django's
    ValidationError into a 400 naming the field): refuses a text holding a control character."""
    if isinstance(value, str):
        char = find_control_character(value)
        if char is not None:
            raise ValidationError(
                "Contains the control character U+%(code)s; only tab, line feed and carriage return are "
                "allowed.",
                code="control_character",
                params={"code": f"{ord(char):04X}"},
            )


@dataclass(frozen=True)
class RuleViolation:
    field: str  # "type", "question", "options" or "answer"
    rule: str  # a short machine name: "mcq_answer_not_an_option"
    message: str  # names the field and the rule, for people

    def __str__(self) -> str:
        return self.message


class InstructionRuleError(ValueError):
    """An instruction breaks its type's rules. `violations` lists each broken rule."""

    def __init__(self, violations: list[RuleViolation]):
        self.violations = violations
        super().__init__("; ".join(v.message for v in violations))

    def as_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for v in self.violations:
            out.setdefault(v.field, []).append(v.message)
        return out

    @property
    def errors(self) -> dict[str, list[str]]:
        """Each broken rule under its field: the API's `errors` (web.api_errors)."""
        return self.as_dict()


def check_text(field: str, value) -> RuleViolation | None:
    """The text rule for one field that is not part of an instruction (a caption's text, a reason, a
    note): the violation, or None. Lists are checked item by item (options)."""
    values = value if isinstance(value, list | tuple) else [value]
    for item in values:
        char = find_control_character(item) if isinstance(item, str) else None
        if char is not None:
            return RuleViolation(field, "control_character", control_character_message(field, char))
    return None


# Computed once: check_instruction runs for every row of an export, and TextChoices.values builds a new
# list on each access.
_TYPE_VALUES = frozenset(InstructionType.values)
_TYPE_LABELS = dict(InstructionType.choices)

_LABEL_PREFIX = re.compile(r"^\s*\(?([A-Fa-f])[\.\):]\s+")


def strip_option_label(option: str) -> str:
    """'B. a red car' → 'a red car'. Options are stored without their labels; labels are positions."""
    return _LABEL_PREFIX.sub("", option, count=1).strip()


def option_label(index: int) -> str:
    """The letter of the option at `index` (A–F): the one way options get their letters; "?" past F."""
    return OPTION_LABELS[index] if 0 <= index < len(OPTION_LABELS) else "?"


def normalize_answer(type_: str, answer: str) -> str:
    """Canonical form of an answer that is unambiguous: 'yes.' → 'Yes', '(b)' → 'B', 'B. cat' → 'B'."""
    text = (answer or "").strip()
    if type_ == InstructionType.JUDGEMENT:
        word = text.rstrip(".!").strip().lower()
        for canonical in JUDGEMENT_ANSWERS:
            if word == canonical.lower():
                return canonical
    elif type_ == InstructionType.MULTIPLE_CHOICE:
        match = re.fullmatch(r"\(?([A-Fa-f])\)?(?:[\.\):]\s*.*)?", text, flags=re.S)
        if match:
            return match.group(1).upper()
    return text


def check_instruction(
    type_: str, question: str, options: list[str] | None, answer: str
) -> list[RuleViolation]:
    """Every rule the instruction breaks; an empty list means it is valid. Does not normalise.

    One implementation: exports call it only for rows whose verdict was not remembered when they were
    written (Instruction.checked_digest), so it need not be fast (docs/benchmarks.md, "Exports")."""
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
    elif (char := find_control_character(question)) is not None:
        fail("question", "control_character", control_character_message("question", char))
    if not answer.strip():
        fail("answer", "required", "answer: must not be empty")
    elif len(answer) > ANSWER_MAX_CHARS:
        fail("answer", "too_long", f"answer: must be at most {ANSWER_MAX_CHARS} characters")
    elif (char := find_control_character(answer)) is not None:
        fail("answer", "control_character", control_character_message("answer", char))

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
        elif (char := find_control_character("".join(options))) is not None:
            fail("options", "control_character", control_character_message("options", char))
        lowered = [o.lower() for o in cleaned]
        if len(set(lowered)) != len(lowered):
            fail("options", "mcq_duplicate_option", "options: the options must be distinct")
        labels = list(OPTION_LABELS[: min(len(options), MCQ_MAX_OPTIONS)])  # letters, not a substring
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


def validate_instruction(type_: str, question: str, options: list[str] | None, answer: str) -> None:
    """Raise InstructionRuleError naming each broken rule; return None if the instruction is valid."""
    violations = check_instruction(type_, question, options, answer)
    if violations:
        raise InstructionRuleError(violations)
