import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    """Markdown → HTML, then sanitised by nh3 (scripts, event handlers and javascript: URLs removed).
    The only place that marks user text safe, and only after the sanitiser."""
    html = markdown_lib.markdown(text or "", extensions=["extra", "sane_lists"])
    return mark_safe(nh3.clean(html))  # noqa: S308 — sanitised just above


@register.filter
def option_letter(index: int) -> str:
    return "ABCDEF"[index] if 0 <= index < 6 else "?"
