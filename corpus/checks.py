"""Automatic checks of instructions: what a machine can catch before a person looks. Beside the type
rules (corpus/rules.py), which refuse, these only *flag*: each finding is a `Finding` (a code and a
message for people) that the review page shows beside its item and the statistics count.

Pure functions over plain values; corpus/services/quality.py reads the rows, runs them on every write of
an instruction and stores the findings (corpus.QualityFlag). Raise CHECKS_VERSION when what they find
changes, as with RULES_VERSION: flags written under an older version are re-run by `recheck_quality`.

Checks of one item: answer_in_question, mcq_options_repeat, wrong_language, not_in_caption,
length_outlier (against its domain's peers of the type). Checks of an image's set: judgement_unbalanced,
duplicate_in_image. Check against the domain (by an index, services/quality.py): duplicate_in_domain.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from statistics import median

from rapidfuzz import fuzz

from .languages import Language, detect_language
from .rules import OPTION_LABELS, InstructionType

# 1: the first set (balance, duplicates in image and domain, answer leaks, MCQ repeats, length, language,
#    grounding against the caption).
CHECKS_VERSION = 1


class Check:
    """The codes of the checks, with what each one means (the statistics page shows these)."""

    JUDGEMENT_UNBALANCED = "judgement_unbalanced"
    DUPLICATE_IN_IMAGE = "duplicate_in_image"
    DUPLICATE_IN_DOMAIN = "duplicate_in_domain"
    ANSWER_IN_QUESTION = "answer_in_question"
    MCQ_OPTIONS_REPEAT = "mcq_options_repeat"
    LENGTH_OUTLIER = "length_outlier"
    WRONG_LANGUAGE = "wrong_language"
    NOT_IN_CAPTION = "not_in_caption"


CHECK_LABELS = {
    Check.JUDGEMENT_UNBALANCED: "Judgement answers all alike",
    Check.DUPLICATE_IN_IMAGE: "Duplicate question (image)",
    Check.DUPLICATE_IN_DOMAIN: "Duplicate question (domain)",
    Check.ANSWER_IN_QUESTION: "Answer given away by the question",
    Check.MCQ_OPTIONS_REPEAT: "Options repeat",
    Check.LENGTH_OUTLIER: "Length outlier",
    Check.WRONG_LANGUAGE: "Not in its prompt's language",
    Check.NOT_IN_CAPTION: "Not in the caption",
}
# Checks whose finding depends on the image's other instructions (re-run for all of them on a write).
IMAGE_CHECKS = frozenset({Check.JUDGEMENT_UNBALANCED, Check.DUPLICATE_IN_IMAGE})


@dataclass(frozen=True)
class Finding:
    code: str
    message: str


@dataclass(frozen=True)
class Item:
    """What the checks read of one instruction."""

    id: int
    type: str
    question: str
    options: tuple[str, ...]
    answer: str
    language: str = ""
    caption: str = ""


# --- normalised text ------------------------------------------------------------------------------

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Words that change nothing about what a question asks (English); Chinese particles likewise.
_STOPWORDS = frozenset(
    "a an the is are was were be this that these those of in on at to for by with and or does do did "
    "there it its image picture photo photograph shown shows visible can you see".split()
)
_ZH_FILLER = re.compile(r"(图中|图片中|图片|图像中|图像|这张|照片中|照片|的|了|吗|呢|是|在)")


def normalise(text: str) -> str:
    """Lower case, NFKC, no punctuation, single spaces: what two copies of a question share."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return " ".join(_PUNCT.sub(" ", text).split())


def content_words(question: str) -> str:
    """What a question asks, without what does not change it: normalised, filler words dropped (for
    Chinese: its characters without particles)."""
    text = normalise(question)
    if _CJK_CHAR.search(text):
        return _ZH_FILLER.sub("", text.replace(" ", ""))
    return " ".join(w for w in text.split() if w not in _STOPWORDS)


def question_key(question: str) -> str:
    """The index key of a question for duplicate lookups (Instruction.question_key): the md5 of its
    content words, sorted and de-duplicated — "Is the car red?", "is there a RED car" and "What is the
    colour of the car?" / "What colour is the car?" pairs share it."""
    content = content_words(question)
    if not _CJK_CHAR.search(content):
        content = " ".join(sorted(set(content.split())))
    return hashlib.md5(content.encode()).hexdigest() if content else ""


_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def _numbers(text: str) -> set[str]:
    return set(_NUMBER.findall(text or ""))


def similar_questions(a: str, b: str, threshold: float) -> float | None:
    """The similarity (0–100) of two questions when they ask the same thing, else None: rapidfuzz's
    token-sort ratio of their content words at or above `threshold`, and the same numbers in both
    ("Is there cat number 1?" and "… number 2?" differ in what matters)."""
    return similar_content(content_words(a), content_words(b), threshold)


def similar_content(na: str, nb: str, threshold: float) -> float | None:
    """similar_questions on content words computed already (a set of questions compares each once)."""
    if not na or not nb or _numbers(na) != _numbers(nb):
        return None
    score = 100.0 if na == nb else fuzz.token_sort_ratio(na, nb)
    return score if score >= threshold else None


# --- checks of one item ---------------------------------------------------------------------------

_COLOURS = (
    "red green blue yellow orange purple violet pink brown black white grey gray silver gold golden "
    "beige cyan magenta turquoise navy maroon teal olive tan crimson"
).split()
_ZH_COLOURS = "红 绿 蓝 黄 橙 紫 粉 棕 黑 白 灰 银 金 褐 青".split()
# From two on: "one" and "zero" are too often no count at all ("one of the cups", "zero in on").
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
    if i >= 2
}
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)*)")
# Capitalised words that are no names (sentence openers the regex may miss, pronouns, labels).
_NOT_NAMES = frozenset(
    "I A B C D E F Yes No The This That These Those There It Its In On At Of And Or But It's".split()
)


def _claims(text: str) -> tuple[set[str], set[str], set[str]]:
    """(numbers, colours, names) a text states. Number words count as their digits."""
    lowered = (text or "").lower()
    words = set(_WORD.findall(lowered))
    numbers = {n.replace(",", "") for n in _numbers(text)} | {
        _NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS
    }
    colours = {w for w in words if w in _COLOURS} | {c for c in _ZH_COLOURS if c in (text or "")}
    names = {m.group(1) for m in _CAPITALISED.finditer(text or "") if m.group(1) not in _NOT_NAMES}
    return numbers, colours, names


def _claimed_text(item: Item) -> str:
    """The text whose claims must come from the caption: the answer; for a Judgement answered Yes, the
    question (it asserts what it asks); for an MCQ, the option its answer letter names."""
    if item.type == InstructionType.JUDGEMENT:
        return item.question if item.answer == "Yes" else ""
    if item.type == InstructionType.MULTIPLE_CHOICE:
        index = OPTION_LABELS.find(item.answer) if len(item.answer) == 1 else -1
        return item.options[index] if 0 <= index < len(item.options) else ""
    return item.answer


def not_in_caption(item: Item) -> Finding | None:
    """Numbers, colours and names the item states that the caption it was written from never mentions
    (the text model, which never saw the image, invented them)."""
    text = _claimed_text(item)
    if not item.caption or not text:
        return None
    numbers, colours, names = _claims(text)
    c_numbers, c_colours, _ = _claims(item.caption)
    caption_lower = item.caption.lower()
    missing = [f"the number {n}" for n in sorted(numbers - c_numbers)]
    missing += [f"the colour {c}" for c in sorted(colours - c_colours)]
    missing += [f"“{n}”" for n in sorted(names) if n.lower() not in caption_lower]
    if not missing:
        return None
    return Finding(Check.NOT_IN_CAPTION, f"mentions {', '.join(missing)}, which its caption never mentions")


def answer_in_question(item: Item) -> Finding | None:
    """The question gives its answer away: a Short VQA answer, or the text of the MCQ's correct option
    (and of no other option), appears word for word in the question."""
    question = f" {normalise(item.question)} "
    if item.type == InstructionType.SHORT_VQA:
        answer = normalise(item.answer)
        if len(answer) >= 3 and answer not in _STOPWORDS and f" {answer} " in question:
            return Finding(
                Check.ANSWER_IN_QUESTION, f"the question already contains its answer “{item.answer}”"
            )
    elif item.type == InstructionType.MULTIPLE_CHOICE:
        index = OPTION_LABELS.find(item.answer) if len(item.answer) == 1 else -1
        if not 0 <= index < len(item.options):
            return None
        inside = [
            i
            for i, option in enumerate(item.options)
            if len(normalise(option)) >= 3 and f" {normalise(option)} " in question
        ]
        if inside == [index]:
            return Finding(
                Check.ANSWER_IN_QUESTION,
                f"the question contains the text of the correct option {item.answer} and of no other",
            )
    return None


_ARTICLES = re.compile(r"^(a|an|the)\s+")


def mcq_options_repeat(item: Item, threshold: float) -> Finding | None:
    """Two options of an MCQ that say the same thing ("Red" and "red.", "a red car" and "red car") —
    exact copies the rules refuse already; these pass them. Names the answer when it is one of them."""
    if item.type != InstructionType.MULTIPLE_CHOICE:
        return None
    cleaned = [_ARTICLES.sub("", normalise(o)) for o in item.options]
    for i in range(len(cleaned)):
        for j in range(i + 1, len(cleaned)):
            if not cleaned[i] or not cleaned[j] or _numbers(cleaned[i]) != _numbers(cleaned[j]):
                continue
            if cleaned[i] == cleaned[j] or fuzz.ratio(cleaned[i], cleaned[j]) >= threshold:
                a, b = OPTION_LABELS[i], OPTION_LABELS[j]
                if item.answer in (a, b):
                    other = b if item.answer == a else a
                    message = f"the answer option {item.answer} says the same as option {other}"
                else:
                    message = f"options {a} and {b} say the same thing"
                return Finding(Check.MCQ_OPTIONS_REPEAT, message)
    return None


def wrong_language(item: Item) -> Finding | None:
    """The item is not in the language its prompt asked for (items of no recorded language: no check)."""
    if not item.language:
        return None
    found = detect_language(" ".join([item.question, *item.options, item.answer]))
    if found is None or found == item.language:
        return None
    return Finding(
        Check.WRONG_LANGUAGE,
        f"written in {Language(found).label}, but its prompt asked for {Language(item.language).label}",
    )


LENGTH_CHECKED_TYPES = (InstructionType.LONG_VQA, InstructionType.SHORT_VQA)


def answer_words(answer: str) -> int:
    """An answer's length in words (a CJK character counts as a word)."""
    return len((answer or "").split()) + len(_CJK_CHAR.findall(answer or ""))


def length_outlier(item: Item, peers_median: float | None, ratio: float) -> Finding | None:
    """An answer far shorter (or longer) than the median of its domain's answers of the same type:
    below median / ratio or above median × ratio words. `peers_median` None: too few peers to judge."""
    if item.type not in LENGTH_CHECKED_TYPES or not peers_median:
        return None
    words = answer_words(item.answer)
    label = InstructionType(item.type).label
    if words < peers_median / ratio:
        return Finding(
            Check.LENGTH_OUTLIER,
            f"a {words}-word answer, where this domain's {label} answers have {peers_median:g} (median)",
        )
    if words > peers_median * ratio:
        return Finding(
            Check.LENGTH_OUTLIER,
            f"a {words}-word answer, where this domain's {label} answers have {peers_median:g} (median)",
        )
    return None


def peers_median(answers: list[str], minimum: int) -> float | None:
    """The median answer length of at least `minimum` peers, else None."""
    if len(answers) < minimum:
        return None
    return float(median(answer_words(a) for a in answers))


# --- checks of an image's set ---------------------------------------------------------------------


def judgement_unbalanced(items: list[Item]) -> dict[int, Finding]:
    """The recipe asks for as many Yes as No: an image whose Judgement set (two or more) is all one
    answer flags each of them."""
    judgements = [i for i in items if i.type == InstructionType.JUDGEMENT]
    answers = {i.answer for i in judgements}
    if len(judgements) < 2 or len(answers) != 1:
        return {}
    answer = answers.pop()
    message = f"all {len(judgements)} Judgement answers of this image are {answer}; the recipe asks for as many Yes as No"
    return {i.id: Finding(Check.JUDGEMENT_UNBALANCED, message) for i in judgements}


def duplicates_in_image(items: list[Item], threshold: float) -> dict[int, Finding]:
    """Questions of one image that ask the same thing (rapidfuzz, see similar_questions): the later one
    of each pair is flagged, naming the earlier."""
    out: dict[int, Finding] = {}
    ordered = sorted(items, key=lambda i: i.id)
    content = {i.id: content_words(i.question) for i in ordered}
    for j, later in enumerate(ordered):
        for earlier in ordered[:j]:
            score = similar_content(content[earlier.id], content[later.id], threshold)
            if score is not None:
                what = (
                    "the same question as" if score == 100 else f"nearly the same question ({score:.0f}%) as"
                )
                out[later.id] = Finding(
                    Check.DUPLICATE_IN_IMAGE, f"{what} instruction {earlier.id} of this image"
                )
                break
    return out


def item_findings(item: Item, *, median_words: float | None, settings) -> list[Finding]:
    """Every check of one item on its own."""
    found = [
        answer_in_question(item),
        mcq_options_repeat(item, settings.QUALITY_SIMILARITY_THRESHOLD),
        wrong_language(item),
        not_in_caption(item),
        length_outlier(item, median_words, settings.QUALITY_LENGTH_OUTLIER_RATIO),
    ]
    return [f for f in found if f is not None]
