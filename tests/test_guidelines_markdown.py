"""Guidelines Markdown may show images only from this site: every annotator's browser renders it, so an image
on another host would be a request there (a tracker) and a CSP violation. Both Markdown filters share the rule."""

import pytest

from corpus.templatetags.corpus_tags import markdown as corpus_markdown

FOREIGN = [
    "https://tracker.example/pixel.png",
    "http://tracker.example/pixel.png",
    "//tracker.example/pixel.png",
    "/\\tracker.example/pixel.png",
    "data:image/png;base64,iVBORw0KGgo=",
    "javascript:alert(1)",
]
LOCAL = ["/media/guides/axes.png", "guides/axes.png", "../static/css/app.css"]


@pytest.mark.parametrize("render", [corpus_markdown])
@pytest.mark.parametrize("src", FOREIGN)
def test_an_image_from_another_host_is_dropped(render, src):
    html = render(f'Look: ![chart]({src}) and <img src="{src}" alt=raw> done.')
    assert "<img" not in html
    assert "tracker.example" not in html and "data:" not in html
    assert "Look:" in html and "done." in html


@pytest.mark.parametrize("render", [corpus_markdown])
@pytest.mark.parametrize("src", LOCAL)
def test_an_image_from_this_site_stays(render, src):
    assert f'<img alt="chart" src="{src}">' in render(f"![chart]({src})")


@pytest.mark.parametrize("render", [corpus_markdown])
def test_links_to_other_hosts_stay_links(render):
    """A link loads nothing until someone follows it: only images are restricted."""
    assert 'href="https://example.org/guide"' in render("[guide](https://example.org/guide)")
