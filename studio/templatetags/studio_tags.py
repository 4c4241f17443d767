from django import template

register = template.Library()


@register.filter
def without_images(funnel) -> list:
    """The domains of the funnel that have no image yet (listed on one line, not as empty funnels)."""
    return [row for row in funnel or [] if not row.imported]
