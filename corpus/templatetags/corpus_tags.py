import re
from urllib.parse import urlsplit

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import mark_safe

from corpus.rules import MCQ_MAX_OPTIONS, option_label

register = template.Library()

_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")


def _same_site_src(tag: str, attribute: str, value: str) -> str | None:
    """nh3 attribute filter: an image source survives only when it is on this site (a relative or
    root-relative URL) — guidelines must not make every annotator's browser fetch from another host."""
    if tag == "img" and attribute == "src":
        url = value.strip()
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or url.startswith(("//", "\\", "/\\")):
            return None
    return value


def sanitize(html: str) -> str:
    """Rendered Markdown → safe HTML: nh3's allow-list (no scripts, event handlers or javascript: URLs),
    and <img> only from this site (one whose source pointed elsewhere is dropped)."""
    return _IMG_WITHOUT_SRC.sub("", nh3.clean(html, attribute_filter=_same_site_src))


@register.filter
def markdown(text: str) -> str:
    """Markdown → HTML, then sanitised by nh3 (scripts, event handlers and javascript: URLs removed).
    The only place that marks user text safe, and only after the sanitiser."""
    html = markdown_lib.markdown(text or "", extensions=["extra", "sane_lists"])
    return mark_safe(sanitize(html))  # noqa: S308 — sanitised just above


@register.filter
def option_slots(options) -> list[tuple[str, str]]:
    """Six (letter, text) slots for a Multiple-Choice question's options, filled from the list."""
    options = list(options or [])
    return [(option_label(i), options[i] if i < len(options) else "") for i in range(MCQ_MAX_OPTIONS)]


@register.filter
def option_rows(options) -> list[tuple[str, str]]:
    """(letter, text) for each option a Multiple-Choice question has — at least two rows (the fewest
    the rules allow), never empty rows past the last option; the page adds more on demand."""
    options = [o for o in (options or [])]
    while options and not str(options[-1]).strip():
        options.pop()
    options += [""] * max(0, 2 - len(options))
    return [(option_label(i), text) for i, text in enumerate(options[:MCQ_MAX_OPTIONS])]
