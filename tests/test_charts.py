"""web.charts and {% bar_chart %}: bars in proportion, stacked series in order, an empty state when there
is nothing to draw, the numbers in a table, and labels escaped (they come from domain and model names)."""

from django.template import Context, Template

from web.charts import LABEL_WIDTH, PLOT_WIDTH, bar_chart


def test_the_longest_total_fills_the_plot_and_segments_stack_in_series_order():
    chart = bar_chart("c", "Title", [("a", [1, 1]), ("b", [4, 0])], series=["x", "y"])
    a, b = chart.bars
    assert [s.series for s in a.segments] == [0, 1]
    assert a.segments[1].x == LABEL_WIDTH + PLOT_WIDTH / 4
    assert b.segments[0].width == PLOT_WIDTH and len(b.segments) == 1  # a zero segment is not drawn
    assert not chart.empty


def test_all_zero_or_no_rows_is_empty():
    assert bar_chart("c", "T", []).empty
    assert bar_chart("c", "T", [("a", [0])]).empty


def test_money_and_shares_read_as_such():
    assert bar_chart("c", "T", [("d", ["0.12345"])], unit="$").bars[0].total_text == "$0.1235"
    assert bar_chart("c", "T", [("d", [0.5])], unit="%").bars[0].total_text == "50.0 %"


def test_the_tag_draws_svg_with_its_numbers_and_escapes_labels():
    template = Template(
        '{% load charts %}{% bar_chart "t" "Marks" rows label="key" values="n" names="Marks" %}'
    )
    html = template.render(Context({"rows": [{"key": "<script>x</script>", "n": 3}, {"key": "b", "n": 1}]}))
    assert "<svg" in html and html.count("<rect") == 2
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert '<td class="num">3</td>' in html


def test_the_tag_says_what_to_do_when_empty():
    template = Template('{% load charts %}{% bar_chart "t" "Spend" rows empty="Nothing spent yet." %}')
    html = template.render(Context({"rows": []}))
    assert "Nothing spent yet." in html and "<svg" not in html
