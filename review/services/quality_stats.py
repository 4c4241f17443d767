"""What the statistics page and the quality API show of the quality loop, in one place: the automatic
checks' flag counts, the verifier against people, review by exception per domain."""

from corpus.models import Domain
from corpus.services import quality

from ..models import AutoAcceptStatus
from . import ledger, verifier_report


def policies() -> list[dict]:
    """Each active domain with its auto-accept status and since when (one query)."""
    rows = Domain.objects.filter(is_active=True).values_list(
        "slug", "name", "auto_accept__status", "auto_accept__since"
    )
    return [
        {"slug": slug, "name": name, "status": status or AutoAcceptStatus.OFF, "since": since}
        for slug, name, status, since in rows
    ]


def statistics(*, for_api: bool = False) -> dict:
    out = {
        "flags": quality.flag_counts(),
        "verifier": verifier_report.report(),
        "auto_accept": policies(),
        "cost": ledger.ledger(),
    }
    if for_api:
        out["flags"]["checks"] = [{"code": c, "label": label} for c, label in out["flags"]["checks"]]
    return out
