"""What the statistics page shows of the quality loop, in one place: the automatic checks' flag counts
(more parts join as they land). Each figure is one grouped query."""

from corpus.services import quality


def statistics() -> dict:
    return {"flags": quality.flag_counts()}
