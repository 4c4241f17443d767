"""From a record's conversation to typed instructions, by the rules of corpus/rules.py.

A conversation is alternating human/gpt turns (also user/assistant; system turns are left out). Each
question/answer pair becomes one instruction:

- the image token (`<image>`) and the answer-format hint our exports append (exports/formatting.py), or
  a hint of the well-known public sets, are taken off the question — the hint names the type;
- lines "A. …" (also "(A) …", "A) …") at the end of the question are a Multiple-Choice question's
  options when the answer is one of their letters;
- otherwise the answer decides: Yes/No → Judgement, a full sentence → Long VQA, a word or short phrase →
  Short VQA;
- what fits no type, or breaks its type's rules, is kept as a draft whose reason says so, for a person
  to type (`TypedTurn.flag`).

Pure functions: no database.
"""

import re
from dataclasses import dataclass

from ..rules import (
    JUDGEMENT_ANSWERS,
    LONG_ANSWER_MIN_WORDS,
    OPTION_LABELS,
    InstructionType,
    check_instruction,
    normalize_answer,
    strip_option_label,
)

IMAGE_TOKEN = "<image>"
HUMAN = frozenset({"human", "user"})
MODEL = frozenset({"gpt", "assistant", "model", "bot"})
SYSTEM = frozenset({"system"})

# Hints that name the type: ours first — the texts exports/formatting.py's ANSWER_HINT appends (corpus
# may not import exports; tests/corpus/test_dataset_import.py holds the two equal) —, then LLaVA-1.5's.
HINTS: dict[str, str] = {
    "Answer with the option's letter.": InstructionType.MULTIPLE_CHOICE,
    "Answer Yes or No.": InstructionType.JUDGEMENT,
    "Answer with a word or short phrase.": InstructionType.SHORT_VQA,
}
HINTS.update(
    {
        "Answer the question using a single word or phrase.": InstructionType.SHORT_VQA,
        "Answer with the option's letter from the given choices directly.": InstructionType.MULTIPLE_CHOICE,
        "Please answer yes or no.": InstructionType.JUDGEMENT,
    }
)
_OPTION_LINE = re.compile(r"^\s*\(?([A-Fa-f])[\.\):]\s+(\S.*)$")
_SENTENCE_END = frozenset(".!?\"')")
_TOKEN = re.compile(r"\s*<image>\s*")


class BadConversation(ValueError):
    """The record's turns cannot be read as question/answer pairs."""


@dataclass(slots=True)
class TypedTurn:
    type: str
    question: str
    options: list[str]
    answer: str
    flag: str = ""  # why a person must look: no type fits, or the type's rules are broken


def pairs(conversations) -> list[tuple[str, str]]:
    """The (question, answer) pairs of a conversation; BadConversation says why there are none."""
    if not isinstance(conversations, list) or not conversations:
        raise BadConversation("no turns")
    out: list[tuple[str, str]] = []
    question: str | None = None
    for n, turn in enumerate(conversations, start=1):
        if not isinstance(turn, dict):
            raise BadConversation(f"turn {n} is not an object with from and value")
        role = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        if not isinstance(role, str) or not isinstance(value, str):
            raise BadConversation(f"turn {n} has no from/value text")
        role = role.lower()
        if role in SYSTEM:
            continue
        if role in HUMAN:
            if question is not None:
                raise BadConversation(f"turn {n}: two questions in a row")
            question = value
        elif role in MODEL:
            if question is None:
                raise BadConversation(f"turn {n}: an answer without a question")
            out.append((question, value))
            question = None
        else:
            raise BadConversation(f"turn {n}: unknown speaker '{role[:20]}'")
    if question is not None:
        raise BadConversation(f"the last question (turn {len(conversations)}) has no answer")
    if not out:
        raise BadConversation("no turns")
    return out


def _split_options(question: str) -> tuple[str, list[str]]:
    """Trailing option lines A., B., … (in order, from A) off the question."""
    lines = question.split("\n")
    options: list[str] = []
    end = len(lines)
    while end > 0:
        match = _OPTION_LINE.match(lines[end - 1])
        if not match:
            break
        options.insert(0, match.group(2).strip())
        end -= 1
    if len(options) < 2:
        return question, []
    labels = [_OPTION_LINE.match(line).group(1).upper() for line in lines[end:]]
    if labels != list(OPTION_LABELS[: len(labels)]):
        return question, []
    return "\n".join(lines[:end]).strip(), options


def type_turn(question: str, answer: str) -> TypedTurn:
    """One question/answer pair as an instruction of the type the rules give it (see the module)."""
    text = _TOKEN.sub("\n", question).strip() if IMAGE_TOKEN in question else question.strip()
    hinted = None
    last_break = text.rfind("\n")
    tail = text[last_break + 1 :].strip()
    if tail in HINTS:
        hinted = HINTS[tail]
        text = text[: max(last_break, 0)].strip()
    answer = answer.strip()
    stem, options = _split_options(text)

    if hinted:
        turn = _candidate(
            hinted, stem if hinted == InstructionType.MULTIPLE_CHOICE else text, options, answer
        )
        if not check_instruction(turn.type, turn.question, turn.options, turn.answer):
            return turn
    if options:
        turn = _candidate(InstructionType.MULTIPLE_CHOICE, stem, options, answer)
        if not check_instruction(turn.type, turn.question, turn.options, turn.answer):
            return turn
    # The answer's shape names the types worth asking the rules about (they have the last word).
    if normalize_answer(InstructionType.JUDGEMENT, answer) in JUDGEMENT_ANSWERS:
        likely = (InstructionType.JUDGEMENT,)
    elif answer[-1:] in _SENTENCE_END and len(answer.split()) >= LONG_ANSWER_MIN_WORDS:
        likely = (InstructionType.LONG_VQA, InstructionType.SHORT_VQA)
    else:
        likely = (InstructionType.SHORT_VQA,)
    for type_ in likely:
        turn = _candidate(type_, text, [], answer)
        if not check_instruction(turn.type, turn.question, turn.options, turn.answer):
            return turn
    # Nothing fits: kept with the likeliest type, and why it fits none.
    if hinted:
        guess = hinted
    elif options:
        guess = InstructionType.MULTIPLE_CHOICE
    else:
        long_enough = len(answer.split()) >= LONG_ANSWER_MIN_WORDS
        guess = InstructionType.LONG_VQA if long_enough else InstructionType.SHORT_VQA
    turn = _candidate(guess, stem if guess == InstructionType.MULTIPLE_CHOICE else text, options, answer)
    broken = check_instruction(turn.type, turn.question, turn.options, turn.answer)
    turn.flag = "imported: fits no instruction type as it is (" + "; ".join(v.message for v in broken) + ")"
    if guess == InstructionType.MULTIPLE_CHOICE and not options:
        turn.options = []
    return turn


def _candidate(type_: str, question: str, options: list[str], answer: str) -> TypedTurn:
    if type_ == InstructionType.MULTIPLE_CHOICE:
        return TypedTurn(
            type_, question, [strip_option_label(o) for o in options], normalize_answer(type_, answer)
        )
    return TypedTurn(type_, question, [], normalize_answer(type_, answer))
