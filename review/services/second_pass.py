"""Second pass: a share of reviewed images goes to a second reviewer (never the first), who agrees or
disagrees with each accepted item; disagreements are listed and the agreement rate reported."""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from corpus.models import Caption, Instruction, ItemStatus
from corpus.rules import check_text

from ..models import EventSubject, ReviewEvent, SecondPass, SecondPassStatus, SecondVerdict


class SecondPassError(Exception):
    """The second-pass action is not possible (not yours, already done, unknown item)."""


# The one table of allowed moves of a second pass's status.
SECOND_PASS_MOVES: dict[str, frozenset[str]] = {
    SecondPassStatus.PENDING: frozenset({SecondPassStatus.IN_REVIEW}),
    SecondPassStatus.IN_REVIEW: frozenset({SecondPassStatus.PENDING, SecondPassStatus.DONE}),
    SecondPassStatus.DONE: frozenset(),
}


def transition_second_pass(
    pass_id: int, *, from_status: str, to_status: str, actor=None, note: str = "", expect=None, **fields
) -> bool:
    """Compare-and-swap the second pass's status with an event row; False when the race was lost."""
    if to_status not in SECOND_PASS_MOVES[from_status]:
        raise SecondPassError(f"a second pass cannot move from {from_status} to {to_status}")
    with transaction.atomic(savepoint=False):
        swapped = SecondPass.objects.filter(pk=pass_id, status=from_status, **(expect or {})).update(
            status=to_status, **fields
        )
        if swapped != 1:
            return False
        image_id = SecondPass.objects.values_list("image_id", flat=True).get(pk=pass_id)
        ReviewEvent.objects.create(
            image_id=image_id,
            subject=EventSubject.SECOND_PASS,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            note=note,
        )
    return True


def is_sampled(image_id: int, share: float) -> bool:
    """Deterministic sampling: the same image is always in or out for a given share (reproducible
    runs, testable shares of 0 and 1), spread evenly by a hash of the id."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    digest = hashlib.sha256(f"second-pass:{image_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def sample_for_second_pass(image_id: int, *, first_reviewer) -> SecondPass | None:
    """Put a just-reviewed image in the second-pass queue if it falls in the configured share and has
    accepted items. Idempotent (one second pass per image)."""
    if not is_sampled(image_id, settings.REVIEW_SECOND_PASS_SHARE):
        return None
    has_accepted = (
        Instruction.objects.filter(image_id=image_id, status=ItemStatus.ACCEPTED).exists()
        or Caption.objects.filter(image_id=image_id, status=ItemStatus.ACCEPTED).exists()
    )
    if not has_accepted:
        return None
    second, _ = SecondPass.objects.get_or_create(
        image_id=image_id, defaults={"first_reviewer": first_reviewer}
    )
    return second


def sweep_expired_second_passes(limit: int = 1000) -> int:
    """Second passes whose reviewer walked away (lease expired) wait for a second reviewer again.
    Idempotent and safe beside another sweep: each is a compare-and-swap with its event. Returns how
    many this call moved."""
    now = timezone.now()
    moved = 0
    for expired_id in SecondPass.objects.filter(
        status=SecondPassStatus.IN_REVIEW, lease_expires_at__lt=now
    ).values_list("id", flat=True)[:limit]:
        moved += transition_second_pass(
            expired_id,
            from_status=SecondPassStatus.IN_REVIEW,
            to_status=SecondPassStatus.PENDING,
            note="lease expired",
            expect={"lease_expires_at__lt": now},
            reviewer=None,
            lease_expires_at=None,
        )
    return moved


def claim_second_pass(user) -> SecondPass | None:
    """Give the user the oldest waiting second pass of an image they did not review first (or one whose
    second reviewer walked away). Not idempotent: each call claims another."""
    now = timezone.now()
    until = now + timedelta(seconds=settings.REVIEW_LEASE_SECONDS)
    mine = SecondPass.objects.filter(status=SecondPassStatus.IN_REVIEW, reviewer=user).first()
    if mine:
        return mine
    sweep_expired_second_passes(limit=20)
    for _ in range(20):
        candidate = (
            SecondPass.objects.filter(status=SecondPassStatus.PENDING)
            .exclude(first_reviewer=user)
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        if candidate is None:
            return None
        if transition_second_pass(
            candidate,
            from_status=SecondPassStatus.PENDING,
            to_status=SecondPassStatus.IN_REVIEW,
            actor=user,
            note="claimed",
            reviewer=user,
            lease_expires_at=until,
        ):
            return SecondPass.objects.select_related("image", "image__domain").get(pk=candidate)
    return None


def items_to_check(second: SecondPass) -> tuple[list[Caption], list[Instruction]]:
    """The accepted caption(s) and instructions of the image, as the first reviewer left them."""
    captions = list(Caption.objects.filter(image_id=second.image_id, status=ItemStatus.ACCEPTED))
    instructions = list(Instruction.objects.filter(image_id=second.image_id, status=ItemStatus.ACCEPTED))
    return captions, instructions


@dataclass(frozen=True)
class VerdictInput:
    kind: str  # "caption" or "instruction"
    item_id: int
    agrees: bool
    second_status: str = ""
    note: str = ""


def submit_verdicts(pass_id: int, *, by, verdicts: list[VerdictInput]) -> SecondPass:
    """Record the second reviewer's verdict on every accepted item and close the second pass.
    Only the person holding it may; a second submit raises SecondPassError (nothing is counted twice)."""
    with transaction.atomic():
        second = SecondPass.objects.select_for_update().get(pk=pass_id)
        if second.status != SecondPassStatus.IN_REVIEW or second.reviewer_id != by.pk:
            raise SecondPassError("This second pass is not yours to submit (or it is already done).")
        captions, instructions = items_to_check(second)
        known = {("caption", c.pk): c for c in captions} | {("instruction", i.pk): i for i in instructions}
        given = {(v.kind, v.item_id): v for v in verdicts}
        missing = set(known) - set(given)
        if missing:
            raise SecondPassError(f"Give a verdict on every item ({len(missing)} missing).")
        rows = []
        for key, item in known.items():
            v = given[key]
            second_status = ItemStatus.ACCEPTED if v.agrees else (v.second_status or ItemStatus.REJECTED)
            if second_status not in (ItemStatus.ACCEPTED, ItemStatus.REJECTED):
                raise SecondPassError(f"Unknown verdict {second_status!r}.")
            if not v.agrees and not v.note.strip():
                raise SecondPassError("Say why you disagree.")
            if (violation := check_text("note", v.note)) is not None:
                raise SecondPassError(violation.message)
            rows.append(
                SecondVerdict(
                    second_pass=second,
                    item_version=item.version,
                    first_status=item.status,
                    second_status=second_status,
                    agrees=v.agrees,
                    note=v.note.strip(),
                    by=by,
                    **{key[0]: item},
                )
            )
        SecondVerdict.objects.bulk_create(rows)
        transition_second_pass(
            pass_id,
            from_status=SecondPassStatus.IN_REVIEW,
            to_status=SecondPassStatus.DONE,
            actor=by,
            note=f"{sum(not r.agrees for r in rows)} disagreement(s)",
            completed_at=timezone.now(),
            lease_expires_at=None,
        )
    second.refresh_from_db()
    return second


def agreement() -> dict:
    """Agreement rate over every verdict: {'verdicts', 'agreed', 'rate'} (rate None with no verdicts)."""
    counts = SecondVerdict.objects.aggregate(verdicts=Count("id"), agreed=Count("id", filter=Q(agrees=True)))
    counts["rate"] = counts["agreed"] / counts["verdicts"] if counts["verdicts"] else None
    return counts


def disagreements():
    """Verdicts that disagree with the first reviewer, newest first, with what the page shows."""
    return (
        SecondVerdict.objects.filter(agrees=False)
        .select_related("caption", "instruction", "by", "second_pass__first_reviewer", "second_pass__image")
        .order_by("-at", "-id")
    )
