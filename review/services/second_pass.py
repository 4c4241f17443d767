"""Second pass: a share of reviewed images goes to a second reviewer (never the first), who agrees or
disagrees with each accepted item; disagreements are listed and the agreement rate reported."""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from corpus.models import Caption, Image, ImageEvent, Instruction, ItemStatus, ReviewStatus
from corpus.rules import check_text
from corpus.transitions import claim_first, record_event, transition

from ..models import SecondPass, SecondPassStatus, SecondVerdict
from ..selectors import items_to_check
from .verifier_report import SYSTEM_USERNAME


class SecondPassError(Exception):
    """The second-pass action is not possible (not yours, already done, unknown item)."""


def _row(pass_id: int, status: str) -> SecondPass:
    """A bare second-pass row for transition(): its id and the status the caller saw."""
    return SecondPass(pk=pass_id, status=status)


def is_sampled(image_id: int, share: float) -> bool:
    """Deterministic sampling: the same image is always in or out for a given share (reproducible
    runs, testable shares of 0 and 1), spread evenly by a hash of the id."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    digest = hashlib.sha256(f"second-pass:{image_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


# The sample on PostgreSQL in one statement (the save's last one): the second pass and its first event,
# only when the image has an accepted item; a second pass the image already has is left alone.
_PG_SAMPLE_SQL = """
WITH sampled AS (
    INSERT INTO review_secondpass (image_id, first_reviewer_id, status, created_at)
    SELECT %(image)s, %(user)s, 'pending', %(now)s
    WHERE EXISTS (SELECT 1 FROM corpus_instruction WHERE image_id = %(image)s AND status = 'accepted')
       OR EXISTS (SELECT 1 FROM corpus_caption WHERE image_id = %(image)s AND status = 'accepted')
    ON CONFLICT (image_id) DO NOTHING
    RETURNING id
), first_event AS (
    INSERT INTO review_secondpassevent (second_pass_id, from_status, to_status, actor_id, at, note)
    SELECT id, '', 'pending', %(user)s, %(now)s, 'sampled' FROM sampled
)
SELECT id FROM sampled
"""


def sample_for_second_pass(image_id: int, *, first_reviewer) -> SecondPass | None:
    """Put a just-reviewed image in the second-pass queue if it falls in the configured share and has
    accepted items, with its first event ("sampled"). Idempotent (one second pass per image). Returns
    the image's second pass, or None when it is not sampled."""
    if not is_sampled(image_id, settings.REVIEW_SECOND_PASS_SHARE):
        return None
    user_id = first_reviewer.pk if first_reviewer is not None else None
    if connection.vendor == "postgresql":
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(_PG_SAMPLE_SQL, {"image": image_id, "user": user_id, "now": now})
            row = cursor.fetchone()
        if row is not None:
            return SecondPass(
                pk=row[0],
                image_id=image_id,
                first_reviewer_id=user_id,
                status=SecondPassStatus.PENDING,
                created_at=now,
            )
        return SecondPass.objects.filter(image_id=image_id).first()
    has_accepted = (
        Instruction.objects.filter(image_id=image_id, status=ItemStatus.ACCEPTED).exists()
        or Caption.objects.filter(image_id=image_id, status=ItemStatus.ACCEPTED).exists()
    )
    if not has_accepted:
        return None
    with transaction.atomic(savepoint=False):
        second, created = SecondPass.objects.get_or_create(
            image_id=image_id, defaults={"first_reviewer": first_reviewer}
        )
        if created:
            record_event(
                second, from_status="", to_status=second.status, actor=first_reviewer, note="sampled"
            )
    return second


# How many of the latest "→ reviewed" image events the sweep looks back over for a missed sample: far
# more images than people finish between two sweeps (SWEEP_INTERVAL, 30 s).
RECENT_REVIEWED_EVENTS = 2000


def sample_missed(*, recent: int = RECENT_REVIEWED_EVENTS) -> int:
    """The sweep's safety net for the sample: a save that finishes an image samples it after its own
    commit (the one-statement save cannot do both), so a crash in between would leave the image out.
    Looks at the latest `recent` events by which a person made an image reviewed (not the sweep's
    "lease expired", not review by exception's system user, whose images the audit share covers
    instead) and samples each image that falls in the share, is still reviewed, has an accepted item
    and no second pass — the sample the save would have made, with its first reviewer. Idempotent and
    safe beside a save or another sweep (sample_for_second_pass is). Returns how many images this call
    sampled."""
    share = settings.REVIEW_SECOND_PASS_SHARE
    if share <= 0:
        return 0
    system = get_user_model().objects.filter(username=SYSTEM_USERNAME).values_list("pk", flat=True)
    events = (
        ImageEvent.objects.filter(to_status=ReviewStatus.REVIEWED, actor__isnull=False)
        .exclude(actor_id__in=list(system))
        .order_by("-id")
        .values_list("image_id", "actor_id")[:recent]
    )
    reviewer: dict[int, int] = {}
    for image_id, actor_id in events:  # newest first: an image's most recent person reviewer
        if image_id not in reviewer and is_sampled(image_id, share):
            reviewer[image_id] = actor_id
    if not reviewer:
        return 0
    accepted = Q(Exists(Instruction.objects.filter(image=OuterRef("pk"), status=ItemStatus.ACCEPTED))) | Q(
        Exists(Caption.objects.filter(image=OuterRef("pk"), status=ItemStatus.ACCEPTED))
    )
    missed = (
        Image.objects.filter(pk__in=list(reviewer), review_status=ReviewStatus.REVIEWED)
        .exclude(Exists(SecondPass.objects.filter(image=OuterRef("pk"))))
        .filter(accepted)
        .values_list("pk", flat=True)
    )
    sampled = 0
    for image_id in missed:
        first_reviewer = get_user_model()(pk=reviewer[image_id])
        if sample_for_second_pass(image_id, first_reviewer=first_reviewer) is not None:
            sampled += 1
    return sampled


def sweep_expired_second_passes(limit: int = 1000) -> int:
    """Second passes whose reviewer walked away (lease expired) wait for a second reviewer again.
    Idempotent and safe beside another sweep: each is a compare-and-swap with its event. Returns how
    many this call moved."""
    now = timezone.now()
    moved = 0
    for expired_id in SecondPass.objects.filter(
        status=SecondPassStatus.IN_REVIEW, lease_expires_at__lt=now
    ).values_list("id", flat=True)[:limit]:
        moved += transition(
            _row(expired_id, SecondPassStatus.IN_REVIEW),
            "status",
            SecondPassStatus.PENDING,
            note="lease expired",
            expect={"lease_expires_at__lt": now},
            fields={"reviewer": None, "lease_expires_at": None},
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
    claimed = claim_first(
        SecondPass.objects.filter(status=SecondPassStatus.PENDING).exclude(first_reviewer=user),
        "status",
        SecondPassStatus.IN_REVIEW,
        actor=user,
        note="claimed",
        fields={"reviewer": user, "lease_expires_at": until},
    )
    if claimed is None:
        return None
    return SecondPass.objects.select_related("image", "image__domain").get(pk=claimed)


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
        transition(
            second,
            "status",
            SecondPassStatus.DONE,
            actor=by,
            note=f"{sum(not r.agrees for r in rows)} disagreement(s)",
            fields={"completed_at": timezone.now(), "lease_expires_at": None},
        )
    second.refresh_from_db()
    return second
