"""Template helpers of the review pages (guidelines Markdown and option letters: corpus_tags)."""

from django import template

register = template.Library()


@register.filter
def percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


@register.filter
def sum_of(values) -> int:
    """The sum of a list of numbers (the "all" row's total)."""
    return sum(v or 0 for v in values or [])


@register.filter
def waiting_total(rows) -> int:
    """Images waiting in the chosen domains of the queue page's rows (all domains when none is chosen)."""
    rows = list(rows or [])
    chosen = [r for r in rows if r.get("chosen")]
    return sum(r.get("pending", 0) for r in (chosen or rows))
