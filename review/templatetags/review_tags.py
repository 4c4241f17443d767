"""Template helpers of the review pages."""

import markdown as markdown_lib
from django import template
from django.utils.safestring import mark_safe

from corpus.rules import OPTION_LABELS
from corpus.templatetags.corpus_tags import sanitize

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    """Domain guidelines: Markdown rendered to HTML, then sanitised by nh3 (an allow-list of tags and
    attributes; scripts, event handlers and javascript: URLs are removed). Only the sanitiser's output
    is marked safe — never the raw text."""
    html = markdown_lib.markdown(text or "", extensions=["sane_lists"])
    return mark_safe(sanitize(html))  # noqa: S308 - sanitised just above (images only from this site)


@register.filter
def option_label(index: int) -> str:
    return OPTION_LABELS[index] if 0 <= index < len(OPTION_LABELS) else "?"


@register.filter
def percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


@register.filter
def option_slots(options) -> list[tuple[str, str]]:
    """Six (label, text) slots for an MCQ's options, filled from the list."""
    options = list(options or [])
    return [(OPTION_LABELS[i], options[i] if i < len(options) else "") for i in range(len(OPTION_LABELS))]


@register.filter
def labelled(options) -> list[tuple[str, str]]:
    return [(OPTION_LABELS[i] if i < len(OPTION_LABELS) else "?", o) for i, o in enumerate(options or [])]
