"""How an instruction becomes a human turn and a model turn in a training record — the one place the
per-type answer hints live. Pure functions, used by every writer through exports/services/build.py."""

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


def format_question(type_: str, question: str, options: list[str]) -> str:
    """The human turn's text (without the image token): question, MCQ options one per line, hint."""
    parts = [question.strip()]
    if type_ == InstructionType.MULTIPLE_CHOICE.value:
        parts.extend(f"{OPTION_LABELS[i]}. {option.strip()}" for i, option in enumerate(options))
    hint = ANSWER_HINT.get(type_, "")
    if hint:
        parts.append(hint)
    return "\n".join(parts)


def format_answer(type_: str, answer: str) -> str:
    """The model turn's text. Answers are stored canonical already (letter, Yes/No); trim only."""
    return answer.strip()
