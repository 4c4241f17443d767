"""{% bar_chart %}: a server-drawn SVG bar chart with its numbers in a table a click away (web.charts).

    {% bar_chart "rates-by-domain" "Corrections by domain" rates.domain label="key" values="edited,rejected,as_is" names="Edited,Rejected,As-is" %}
    {% bar_chart "spend" "Spend per day" by_day label="day" values="cost" unit="$" empty="No spend yet." %}

`rows` is a list of dicts or objects (read by key, then attribute), or of (label, value) pairs when
`label` is not given."""

from django import template

from web.charts import bar_chart as draw

register = template.Library()


def _get(row, key):
    if isinstance(row, dict):
        return row.get(key)
    return getattr(row, key, None)


@register.inclusion_tag("web/_bar_chart.html")
def bar_chart(chart_id, title, rows, label="", values="", names="", unit="", empty="Nothing to draw yet."):
    keys = [k for k in values.split(",") if k]
    series = [n for n in names.split(",") if n] or keys or ["value"]
    table = []
    for row in rows or []:
        if label:
            name = _get(row, label)
            table.append(("–" if name in (None, "") else str(name), [_get(row, k) for k in keys]))
        else:
            name, value = row
            table.append((str(name), [value]))
    return {"chart": draw(chart_id, title, table, series=series, unit=unit, empty_text=empty)}


@register.filter
def pairs(labels, values):
    """Zip `labels` (a list of (value, label) choices, or of names) with `values`."""
    names = [c[1] if isinstance(c, list | tuple) else c for c in labels or []]
    return list(zip(names, values or [], strict=False))
