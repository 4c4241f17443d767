"""The languages drafts are written in, and a script-based guess of a text's language.

A prompt version is written for one language (generation.PromptTemplate.language); the drafts it makes
record it (ReviewedItem.language); the language check (corpus/checks.py) compares the text with it, and
an export spec may select by it. English and Chinese to start: telling them apart needs no model — the
share of CJK ideographs among the letters decides.
"""

import re

from django.db import models


class Language(models.TextChoices):
    ENGLISH = "en", "English"
    CHINESE = "zh", "Chinese"


DEFAULT_LANGUAGE = Language.ENGLISH

# CJK Unified Ideographs (and extension A, compatibility ideographs); Latin letters with accents.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
# Fewer letters than this say nothing about a language ("A", "3", "Yes"); the check stays quiet.
MIN_LETTERS = 4


def detect_language(text: str) -> str | None:
    """ "zh" when CJK ideographs carry at least a third of the text's letters, "en" when Latin letters
    carry nearly all of them, None when the text is too short or too mixed to tell."""
    text = text or ""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    # One ideograph stands for a word, a Latin word is ~5 letters: weigh them alike.
    weighed = cjk * 5 + latin
    if cjk >= 2 and cjk * 5 * 3 >= weighed:
        return Language.CHINESE.value
    if latin >= MIN_LETTERS and latin >= weighed * 0.9:
        return Language.ENGLISH.value
    return None
