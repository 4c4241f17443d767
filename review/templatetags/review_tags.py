"""Template helpers of the review pages (guidelines Markdown and option letters: corpus_tags)."""

from django import template

register = template.Library()


@register.filter
def percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"
