"""How an instruction becomes a human turn in a training record — the one place the per-type answer
hints live. Pure functions, used by the build's loop (exports/services/build.py), which also makes the
model turn: the stored answer, trimmed (answers are stored canonical already: a letter, Yes/No)."""

from operator import add

from corpus.rules import OPTION_LABELS, InstructionType

IMAGE_TOKEN = "<image>"

# The answer-format hint appended to each question, per type. Long VQA gets none: a full answer is
# what the model should learn to give by default.
ANSWER_HINT: dict[str, str] = {
    InstructionType.MULTIPLE_CHOICE.value: "Answer with the option's letter.",
    InstructionType.JUDGEMENT.value: "Answer Yes or No.",
    InstructionType.SHORT_VQA.value: "Answer with a word or short phrase.",
    InstructionType.LONG_VQA.value: "",
}


# The hint as it follows the question (or the last option): on its own line. Plain str keys, so the
# hot loop's lookups do not go through the enum; the export loop uses it directly for non-MCQ types
# (the same text format_question makes, without a call per row).
HINT_SUFFIX = {str(type_): f"\n{hint}" if hint else "" for type_, hint in ANSWER_HINT.items()}
_MCQ = InstructionType.MULTIPLE_CHOICE.value
_OPTION_PREFIXES = tuple(f"{label}. " for label in OPTION_LABELS)


def format_question(type_: str, question: str, options: list[str]) -> str:
    """The human turn's text (without the image token): question, MCQ options one per line as "A. …",
    then the type's hint on its own line."""
    if type_ == _MCQ:
        # "A. " + option.strip() per option, as many as there are labels (like zip).
        lines = "\n".join(map(add, _OPTION_PREFIXES, map(str.strip, options)))
        return f"{question.strip()}\n{lines}{HINT_SUFFIX[_MCQ]}"
    return question.strip() + HINT_SUFFIX.get(type_, "")
