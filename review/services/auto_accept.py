"""Review by exception, opt-in per domain. While a domain's AutoAcceptPolicy is on, a draft instruction
that passes every automatic check (no QualityFlag) and that the verifier called `supported` at its current
version — and no verdict at that version said otherwise — is accepted without a person: through
corpus.services.items.update_item (the rules, the version compare-and-swap, a Revision) by the system user,
its revision marked origin "auto". Except an audit share (QUALITY_AUDIT_SHARE, chosen by a stable hash of
the item id), which still goes to people and measures the verifier.

Switching on is refused until the domain's decided items show the verifier's precision and recall at or
above the floors (QUALITY_MIN_PRECISION, QUALITY_MIN_RECALL, over at least QUALITY_MIN_DECIDED items);
each run first re-measures the audit since the switch and switches the domain off, with an event, when it
falls below them. Images move through the queue's public functions (take_image, release_lease), so the
lease rules hold: an image a person holds is left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from corpus.models import (
    Domain,
    Instruction,
    ItemStatus,
    Origin,
    QualityFlag,
    Revision,
    Verdict,
    VerdictValue,
)
from corpus.rules import InstructionRuleError
from corpus.services.items import InvalidTransition, StaleVersion, decide_item
from corpus.transitions import transition

from ..models import AutoAcceptPolicy, AutoAcceptStatus
from . import queue
from .verifier_report import confusion_of, decided_rows, is_audited, system_user

log = logging.getLogger(__name__)
AUTO = "auto"


class AutoAcceptRefused(Exception):
    """Auto-accept cannot be switched on for this domain yet; the message gives the figures."""


@dataclass
class Measure:
    decided: int
    precision: float | None
    recall: float | None

    @property
    def enough(self) -> bool:
        return self.decided >= settings.QUALITY_MIN_DECIDED

    @property
    def meets_floors(self) -> bool:
        return (
            self.enough
            and self.precision is not None
            and self.recall is not None
            and self.precision >= settings.QUALITY_MIN_PRECISION
            and self.recall >= settings.QUALITY_MIN_RECALL
        )

    @property
    def below_floors(self) -> bool:
        """Measured on enough items and under a floor (an undefined figure is no evidence either way)."""
        return self.enough and (
            (self.precision is not None and self.precision < settings.QUALITY_MIN_PRECISION)
            or (self.recall is not None and self.recall < settings.QUALITY_MIN_RECALL)
        )

    def __str__(self) -> str:
        def pct(x):
            return "n/a" if x is None else f"{x:.1%}"

        return (
            f"precision {pct(self.precision)}, recall {pct(self.recall)} over {self.decided} decided items "
            f"(floors {settings.QUALITY_MIN_PRECISION:.0%} / {settings.QUALITY_MIN_RECALL:.0%}, at least "
            f"{settings.QUALITY_MIN_DECIDED} items)"
        )


def measure(domain: Domain, *, since=None, audited_only: bool = False) -> Measure:
    """The verifier's precision and recall on the domain's items people decided (since `since`; with
    `audited_only`, only the audit share's)."""
    rows = decided_rows(domain_ids=[domain.pk], since=since)
    if audited_only:
        share = settings.QUALITY_AUDIT_SHARE
        rows = (r for r in rows if is_audited(r[0], share))
    c = confusion_of(rows)
    return Measure(c.decided, c.precision, c.recall)


def policy_of(domain: Domain) -> AutoAcceptPolicy:
    policy, _ = AutoAcceptPolicy.objects.get_or_create(domain=domain)
    return policy


def switch_on(domain: Domain, *, by) -> AutoAcceptPolicy:
    """Turn review by exception on for the domain, if the verifier's measured precision and recall meet
    the floors; raises AutoAcceptRefused (with the figures) otherwise. Idempotent when already on."""
    policy = policy_of(domain)
    if policy.status == AutoAcceptStatus.ON:
        return policy
    figures = measure(domain)
    if not figures.meets_floors:
        raise AutoAcceptRefused(f"auto-accept stays off for {domain.slug}: {figures}")
    transition(
        policy,
        "status",
        AutoAcceptStatus.ON,
        actor=by,
        note=f"switched on: {figures}",
        fields={"since": timezone.now()},
    )
    policy.refresh_from_db()
    return policy


def switch_off(domain: Domain, *, by, note: str = "switched off by a person") -> bool:
    """Turn it off (idempotent: False when it was off already)."""
    policy = policy_of(domain)
    if policy.status == AutoAcceptStatus.OFF:
        return False
    return transition(policy, "status", AutoAcceptStatus.OFF, actor=by, note=note)


def candidates(domain: Domain) -> list[tuple[int, int, int]]:
    """(id, image id, version) of the domain's drafts auto-accept may take, audit share included (the
    caller leaves that out): model drafts with no flag, judged supported at their current version and by
    no verdict at that version otherwise."""
    at_version = Verdict.objects.filter(instruction=OuterRef("pk"), item_version=OuterRef("version"))
    return list(
        Instruction.objects.filter(image__domain=domain, status=ItemStatus.DRAFT, origin=Origin.MODEL)
        .filter(Exists(at_version.filter(verdict=VerdictValue.SUPPORTED)))
        .exclude(Exists(at_version.exclude(verdict=VerdictValue.SUPPORTED)))
        .exclude(Exists(QualityFlag.objects.filter(instruction=OuterRef("pk"))))
        .order_by("image_id", "id")
        .values_list("id", "image_id", "version")
    )


def run_auto_accept(domain: Domain) -> dict[str, int]:
    """One pass of review by exception over the domain: re-measure the audit (switch off when it fell
    below the floors), then accept every candidate outside the audit share. Idempotent (a second pass
    finds nothing left); safe beside people (an image someone holds is skipped, a stale item too).
    Returns counts: accepted, audited (left to people), skipped."""
    counts = {"accepted": 0, "audited": 0, "skipped": 0}
    policy = policy_of(domain)
    if policy.status != AutoAcceptStatus.ON:
        return counts
    audit = measure(domain, since=policy.since, audited_only=True)
    system = system_user()
    if audit.below_floors:
        transition(
            policy, "status", AutoAcceptStatus.OFF, actor=system, note=f"audit below the floors: {audit}"
        )
        log.warning("auto-accept switched itself off for %s: %s", domain.slug, audit)
        return counts
    share = settings.QUALITY_AUDIT_SHARE
    by_image: dict[int, list[tuple[int, int]]] = {}
    for pk, image_id, version in candidates(domain):
        if is_audited(pk, share):
            counts["audited"] += 1
        else:
            by_image.setdefault(image_id, []).append((pk, version))
    for image_id, items in by_image.items():
        accepted = _accept_image(image_id, items, system)
        counts["accepted"] += accepted
        counts["skipped"] += len(items) - accepted
    return counts


def _accept_image(image_id: int, items: list[tuple[int, int]], system) -> int:
    """Accept these drafts of one pending image through the item decision service (decide_item) as the
    system user, holding the image's lease meanwhile — taken through the queue, given back (or, when the
    last draft was decided, the image finished by the decision itself), every move with its event. 0
    when someone else holds it."""
    accepted = 0
    with transaction.atomic():
        try:
            queue.take_image(image_id, system)
        except queue.LeaseError:
            return 0
        for pk, version in items:
            item = Instruction.objects.filter(pk=pk).first()
            if item is None:
                continue
            try:
                saved = decide_item(
                    item,
                    actor=system,
                    expected_version=version,
                    status=ItemStatus.ACCEPTED,
                    note="auto-accepted: no flag, verifier: supported",
                    holding_lease=True,
                )
            except (StaleVersion, InstructionRuleError, InvalidTransition, queue.LeaseError):
                continue
            Revision.objects.filter(pk=saved.revision_id).update(origin=AUTO)
            accepted += 1
        queue.release_lease(image_id, system)
    return accepted


def run_all() -> dict[str, dict[str, int]]:
    """run_auto_accept for every domain whose policy is on (Celery beat)."""
    domains = Domain.objects.filter(auto_accept__status=AutoAcceptStatus.ON)
    return {d.slug: run_auto_accept(d) for d in domains}
