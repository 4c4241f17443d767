"""How good the verifier is, measured against people: on every model-drafted instruction a person decided
(accepted or rejected, by anyone but the auto-accept system user) that the verifier had judged, a
verdict of `unsupported` is a positive, and a person's reject or edit is a true problem. Precision =
share of `unsupported` verdicts that people rejected or edited; recall = share of rejected or edited
items the verifier called `unsupported` (an `unsure` counts as not unsupported). With Wilson 95%
confidence intervals, overall and by domain, instruction type and model.

The verdict read is the item's first one (what the verifier said before any person touched it).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.fields.json import KT

from corpus.models import Instruction, ItemStatus, Origin, Revision, Verdict, VerdictValue

SYSTEM_USERNAME = "auto-accept"
CONTENT_FIELDS = ("type", "question", "options", "answer")


def system_user():
    """The user review by exception acts as (made once; it cannot log in)."""
    user, created = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def is_audited(instruction_id: int, share: float) -> bool:
    """Whether the item is in the audit share: a stable hash of its id, so the same items stay audited
    whatever order they are seen in, and about `share` of any large set are."""
    digest = hashlib.sha256(f"audit:{instruction_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion k/n (95% by default); None when n is 0."""
    if n == 0:
        return None
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Confusion:
    tp: int = 0  # unsupported, and people rejected or edited it
    fp: int = 0  # unsupported, people accepted it as it was
    fn: int = 0  # supported/unsure, people rejected or edited it
    tn: int = 0  # supported/unsure, people accepted it as it was

    def add(self, predicted: bool, actual: bool, n: int = 1) -> None:
        if predicted and actual:
            self.tp += n
        elif predicted:
            self.fp += n
        elif actual:
            self.fn += n
        else:
            self.tn += n

    @property
    def decided(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def as_dict(self) -> dict:
        return {
            "decided": self.decided,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": self.precision,
            "precision_ci": wilson(self.tp, self.tp + self.fp),
            "recall": self.recall,
            "recall_ci": wilson(self.tp, self.tp + self.fn),
        }


def _content_changed() -> Exists:
    """A revision of the instruction whose before and after differ in content (not only in status)."""
    revisions = Revision.objects.filter(instruction=OuterRef("pk"), before__isnull=False)
    changed = Q()
    aliases = {}
    for name in CONTENT_FIELDS:
        aliases[f"b_{name}"] = KT(f"before__{name}")
        aliases[f"a_{name}"] = KT(f"after__{name}")
        changed |= ~Q(**{f"b_{name}": F(f"a_{name}")})
    return Exists(revisions.alias(**aliases).filter(changed))


def decided_rows(*, domain_ids: list[int] | None = None, since=None):
    """(id, type, model, domain, verdict, bad) of each judged model draft a person decided (since
    `since`, on reviewed_at). One query."""
    first_verdict = Verdict.objects.filter(instruction=OuterRef("pk")).order_by("id").values("verdict")[:1]
    qs = (
        Instruction.objects.filter(
            origin=Origin.MODEL,
            status__in=[ItemStatus.ACCEPTED, ItemStatus.REJECTED],
            reviewed_by__isnull=False,
        )
        .exclude(reviewed_by__username=SYSTEM_USERNAME)
        .annotate(verdict=Subquery(first_verdict), edited=_content_changed())
        .filter(verdict__isnull=False)
    )
    if domain_ids is not None:
        qs = qs.filter(image__domain_id__in=domain_ids)
    if since is not None:
        qs = qs.filter(reviewed_at__gte=since)
    for pk, type_, model, domain, verdict, status, edited in qs.values_list(
        "pk", "type", "model_name", "image__domain__name", "verdict", "status", "edited"
    ).iterator(chunk_size=5000):
        yield pk, type_, model, domain, verdict, status == ItemStatus.REJECTED or bool(edited)


def confusion_of(rows) -> Confusion:
    confusion = Confusion()
    for _pk, _type, _model, _domain, verdict, bad in rows:
        confusion.add(verdict == VerdictValue.UNSUPPORTED, bad)
    return confusion


def report(*, domain_ids: list[int] | None = None, since=None) -> dict:
    """The verifier against people: {"overall": {...}, "by_domain": [...], "by_type": [...],
    "by_model": [...]}, each with decided, tp/fp/fn/tn, precision and recall with their 95% intervals."""
    tables: dict[str, dict[str, Confusion]] = {k: defaultdict(Confusion) for k in ("domain", "type", "model")}
    overall = Confusion()
    for _pk, type_, model, domain, verdict, bad in decided_rows(domain_ids=domain_ids, since=since):
        predicted = verdict == VerdictValue.UNSUPPORTED
        overall.add(predicted, bad)
        tables["domain"][domain].add(predicted, bad)
        tables["type"][type_].add(predicted, bad)
        tables["model"][model or "(unknown)"].add(predicted, bad)
    out = {"overall": overall.as_dict()}
    for name, groups in tables.items():
        out[f"by_{name}"] = [{"key": key, **c.as_dict()} for key, c in sorted(groups.items())]
    return out
