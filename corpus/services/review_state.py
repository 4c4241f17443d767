"""The moves of an image's review state (Image.review_status and its lease): claim, take, reopen, renew,
release, finish, the sweep of expired leases, and new drafts sending an image back to the queue.

Every move is one of Image.STATUS_MOVES and writes exactly one corpus.ImageEvent: through
corpus.transitions.transition() for one image, or — for the PostgreSQL claim and its sweep, which move
rows in one statement — in the same statement (data-modifying CTEs), after check_move() of the move.

One lease covers an image with its caption and instructions. Claims never hand one image to two people:
on PostgreSQL one statement locks candidates with FOR UPDATE SKIP LOCKED; elsewhere a compare-and-swap
decides (corpus.transitions.claim_first) and the loser retries with the next id. Leases come only from
intent — a claim, a take, a reopen —; renewing or saving never leases an image the user did not hold.
The review app builds its queue on these (review.services.queue); the second-pass sampling of a
finished image is the review app's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from ..models import Caption, Domain, Image, ImageEvent, Instruction, ItemStatus, ReviewStatus
from ..transitions import check_move, claim_first, transition


class LeaseError(Exception):
    """The user cannot work on this image now; the message says why. `code` names the case for the
    API (not_reviewable: nothing to review, or reviewed — reopen it)."""

    code = "not_reviewable"

    @property
    def api_extra(self) -> dict:
        return {"code": self.code}


class LeaseHeld(LeaseError):
    """Someone else holds an unexpired lease on the image."""

    code = "lease_held"

    def __init__(self, image: Image, holder_name: str):
        self.image = image
        self.holder_name = holder_name
        super().__init__(
            f"{holder_name} is reviewing this image now (lease until {image.lease_expires_at:%H:%M:%S} UTC)"
        )


class NotHeld(LeaseError):
    """The user does not hold the image: a renew or a save does not take it (taking is a POST of its own)."""

    code = "not_held"


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.REVIEW_LEASE_SECONDS)


def _image(image_id: int, status: str) -> Image:
    """A bare image row for transition(): its id and the status the caller saw."""
    return Image(pk=image_id, review_status=status)


# The moves the claim statement makes, checked once against the table (a change of the table that drops
# one of them fails at import, not in production).
for _from, _to in (
    (ReviewStatus.IN_REVIEW, ReviewStatus.PENDING),
    (ReviewStatus.IN_REVIEW, ReviewStatus.REVIEWED),
    (ReviewStatus.PENDING, ReviewStatus.IN_REVIEW),
):
    check_move(Image, "review_status", _from, _to)

# The claim in one round trip (see docs/performance.md, "Claiming the next image"):
#  - `swept` returns expired leases to the queue. It reads image_lease_expiry_idx (lease_expires_at
#    WHERE review_status='in_review'), so it costs one empty index probe when nothing expired, and
#    SKIP LOCKED leaves alone an image whose holder is saving right now (the save locks the row).
#  - `pick` does one lookup per requested domain on review_claim_idx ((domain_id, id + 0) WHERE
#    review_status='pending', migration review/0002) and keeps the smallest id. A single
#    `domain_id = ANY(…) ORDER BY id` scan walks past rows other claimers hold locked and is no better
#    than no index. `ORDER BY id + 0` is an order only that index provides, so the planner cannot fall
#    back to walking the primary key through the reviewed rows (it would at random_page_cost = 4).
#  - `claimed` swaps pending → in_review, and each move writes its ImageEvent in the same statement
#    (swept_events, claim_events), as transition() does for one image.
# Rows swept here become claimable from the next statement on (CTEs share one snapshot).
_PG_CLAIM_SQL = """
WITH swept AS (
    -- Back to the queue when drafts remain; an image someone only reopened to look at is reviewed.
    UPDATE corpus_image AS i
    SET review_status = CASE
            WHEN EXISTS (SELECT 1 FROM corpus_instruction WHERE image_id = i.id AND status = 'draft')
              OR EXISTS (SELECT 1 FROM corpus_caption WHERE image_id = i.id AND status = 'draft')
            THEN 'pending' ELSE 'reviewed' END,
        leased_by_id = NULL, lease_expires_at = NULL
    WHERE i.id IN (
        SELECT id FROM corpus_image
        WHERE review_status = 'in_review' AND lease_expires_at < now()
        ORDER BY lease_expires_at LIMIT 100
        FOR UPDATE SKIP LOCKED
    )
    RETURNING i.id, i.review_status
), swept_events AS (
    INSERT INTO corpus_imageevent (image_id, from_status, to_status, actor_id, at, note)
    SELECT id, 'in_review', review_status, NULL, now(), 'lease expired' FROM swept
), pick AS (
    SELECT c.id
    FROM unnest(COALESCE(%(domains)s::bigint[], ARRAY(SELECT id FROM corpus_domain WHERE is_active))) AS d(dom)
    CROSS JOIN LATERAL (
        SELECT id FROM corpus_image
        WHERE domain_id = d.dom AND review_status = 'pending'
        ORDER BY id + 0 LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.id LIMIT 1
), claimed AS (
    UPDATE corpus_image AS i
    SET review_status = 'in_review', leased_by_id = %(user)s,
        lease_expires_at = now() + make_interval(secs => %(secs)s)
    FROM pick WHERE i.id = pick.id AND i.review_status = 'pending'
    RETURNING i.id, i.domain_id, i.file, i.width, i.height, i.lease_expires_at
), claim_events AS (
    INSERT INTO corpus_imageevent (image_id, from_status, to_status, actor_id, at, note)
    SELECT id, 'pending', 'in_review', %(user)s, now(), 'claimed' FROM claimed
)
SELECT c.id, c.domain_id, d.slug, c.file, c.width, c.height, c.lease_expires_at
FROM claimed AS c JOIN corpus_domain AS d ON d.id = c.domain_id
"""

# The pick alone, for the EXPLAIN test and the benchmark's plan check.
PG_PICK_SQL = """
SELECT c.id
FROM unnest(%s::bigint[]) AS d(dom)
CROSS JOIN LATERAL (
    SELECT id FROM corpus_image
    WHERE domain_id = d.dom AND review_status = 'pending'
    ORDER BY id + 0 LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS c
ORDER BY c.id LIMIT 1
"""


@dataclass(frozen=True)
class Claim:
    """What a claim returns in its one round trip: enough to show or fetch the image."""

    image_id: int
    domain_id: int
    domain_slug: str
    file: str  # storage name
    width: int
    height: int
    lease_expires_at: datetime


def claim_next(annotator, *, domain_ids: list[int] | None = None) -> Claim | None:
    """Lease the next pending image of the given domains (all active ones if none) to `annotator`, or
    None when the queue is empty. Not idempotent: each call claims another image. On PostgreSQL this is
    one statement (sweep, pick, swap, events and the image's fields)."""
    if connection.vendor == "postgresql":
        # No domains chosen: the statement reads the active ones itself (NULL → every active domain).
        domains = [int(d) for d in domain_ids] if domain_ids else None
        # A second try when the first finds nothing: images its sweep just returned are visible only
        # to the next statement. Costs one more round trip only when the queue looks empty.
        for _ in range(2):
            with connection.cursor() as cursor:
                cursor.execute(
                    _PG_CLAIM_SQL,
                    {"domains": domains, "user": annotator.pk, "secs": settings.REVIEW_LEASE_SECONDS},
                )
                row = cursor.fetchone()
            if row:
                return Claim(*row)
        return None
    image_id = claim_by_swap(annotator, domain_ids=domain_ids)
    if image_id is None:
        return None
    image = Image.objects.select_related("domain").get(pk=image_id)
    return Claim(
        image.pk,
        image.domain_id,
        image.domain.slug,
        image.file.name,
        image.width,
        image.height,
        image.lease_expires_at,
    )


def claim_by_swap(annotator, *, domain_ids: list[int] | None = None) -> int | None:
    """The portable claim (SQLite; raced on PostgreSQL by the tests): sweep expired leases, then swap the
    smallest pending id of the domains to in_review; a lost race retries with the next candidate
    (corpus.transitions.claim_first). Returns the image id, or None when nothing waits."""
    domains = domain_ids or list(Domain.objects.filter(is_active=True).values_list("id", flat=True))
    if not domains:
        return None
    sweep_expired_leases()
    return claim_first(
        Image.objects.filter(review_status=ReviewStatus.PENDING, domain_id__in=[int(d) for d in domains]),
        "review_status",
        ReviewStatus.IN_REVIEW,
        actor=annotator,
        note="claimed",
        fields={"leased_by": annotator, "lease_expires_at": timezone.now() + lease_duration()},
    )


def has_drafts(image_id: int) -> bool:
    """Whether a caption or instruction of the image still waits for a decision (one query)."""
    drafts = Q(Exists(Instruction.objects.filter(image_id=OuterRef("pk"), status=ItemStatus.DRAFT))) | Q(
        Exists(Caption.objects.filter(image_id=OuterRef("pk"), status=ItemStatus.DRAFT))
    )
    return Image.objects.filter(drafts, pk=image_id).exists()


def sweep_batch(limit: int = 100) -> tuple[int, int]:
    """Return one batch of expired leases to the queue (or to reviewed when no drafts are left, e.g. an
    image someone reopened only to look at): (expired leases found, leases this call moved — one another
    sweep returned first is not counted). Idempotent; each move is a compare-and-swap with its event."""
    now = timezone.now()
    expired = list(
        Image.objects.filter(review_status=ReviewStatus.IN_REVIEW, lease_expires_at__lt=now)
        .order_by("lease_expires_at")
        .values_list("id", "leased_by_id")[:limit]
    )
    returned = 0
    for image_id, holder_id in expired:
        returned += transition(
            _image(image_id, ReviewStatus.IN_REVIEW),
            "review_status",
            ReviewStatus.PENDING if has_drafts(image_id) else ReviewStatus.REVIEWED,
            note="lease expired",
            expect={"leased_by_id": holder_id, "lease_expires_at__lt": now},
            fields={"leased_by": None, "lease_expires_at": None},
        )
    return len(expired), returned


def sweep_expired_leases(limit: int = 100) -> int:
    """One batch of sweep_batch; returns how many leases this call returned."""
    return sweep_batch(limit)[1]


def take_image(image_id: int, user, *, reopen: bool = False) -> datetime:
    """Take the image for review by intent (the page's "Review this image" and "Reopen" buttons, the
    API's take and reopen): a pending image is claimed; a reviewed one is reopened only with
    `reopen`; an image whose holder's lease expired goes back (to the queue, or reviewed) and from there
    to this user. Each move writes an event. The user's own lease is renewed (idempotent for the
    holder). Returns the new expiry; the image row stays locked until the end of the caller's
    transaction. Raises LeaseHeld when someone else holds it, LeaseError when there is nothing to take."""
    if not transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return take_image(image_id, user, reopen=reopen)
    until = timezone.now() + lease_duration()
    # The holder asking again: one round trip (the UPDATE locks the row like FOR UPDATE).
    if Image.objects.filter(pk=image_id, review_status=ReviewStatus.IN_REVIEW, leased_by=user).update(
        lease_expires_at=until
    ):
        return until
    image = Image.objects.select_for_update().filter(pk=image_id).first()
    if image is None:
        raise LeaseError("There is no such image.")
    now = timezone.now()
    if image.review_status == ReviewStatus.IN_REVIEW:
        if image.lease_expires_at and image.lease_expires_at > now:
            raise LeaseHeld(image, _holder_name(image))
        # The other person's lease expired: it goes back (to the queue, or reviewed when nothing is
        # left), as the sweep would have done, and from there to this user.
        back_to = ReviewStatus.PENDING if has_drafts(image_id) else ReviewStatus.REVIEWED
        transition(
            image,
            "review_status",
            back_to,
            actor=user,
            note="lease expired",
            expect={"leased_by_id": image.leased_by_id},
            fields={"leased_by": None, "lease_expires_at": None},
        )
    if image.review_status == ReviewStatus.NEW:
        raise LeaseError("This image has no drafts to review yet.")
    if image.review_status == ReviewStatus.REVIEWED and not reopen:
        raise LeaseError("This image is reviewed; reopen it to change it.")
    taken = transition(
        image,
        "review_status",
        ReviewStatus.IN_REVIEW,
        actor=user,
        note="opened" if image.review_status == ReviewStatus.PENDING else "reopened",
        fields={"leased_by": user, "lease_expires_at": until},
    )
    if not taken:  # pragma: no cover - the row lock makes this unreachable on PostgreSQL
        raise LeaseError("The image changed while you opened it; try again.")
    return until


def _holder_name(image: Image) -> str:
    if not image.leased_by_id:
        return "someone"
    holder = get_user_model().objects.filter(pk=image.leased_by_id).values_list("username", flat=True)
    return holder.first() or "someone"


def renew_lease(image_id: int, user) -> datetime:
    """Extend the lease the user holds (the page's heartbeat; saves renew it too) and return its new
    expiry. Idempotent. A holder whose lease lapsed gets the image back when nobody took it meanwhile —
    still leased to them, or returned to the queue by the sweep and claimed by no one since (that is
    still their image). Never takes an image the user did not hold: raises LeaseHeld when someone else
    holds it, NotHeld otherwise. The image row stays locked until the end of the caller's transaction,
    so no sweep or claim takes it meanwhile."""
    if not transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return renew_lease(image_id, user)
    until = timezone.now() + lease_duration()
    # The usual case in one round trip, whether or not the lease ran out (nobody took it: it is theirs).
    if Image.objects.filter(pk=image_id, review_status=ReviewStatus.IN_REVIEW, leased_by=user).update(
        lease_expires_at=until
    ):
        return until
    image = Image.objects.select_for_update().filter(pk=image_id).first()
    if image is None:
        raise NotHeld("There is no such image.")
    if image.review_status == ReviewStatus.IN_REVIEW:
        if image.lease_expires_at and image.lease_expires_at > timezone.now():
            raise LeaseHeld(image, _holder_name(image))
        raise NotHeld("You do not hold this image; its last holder's lease ran out. Take it to review it.")
    if (
        image.review_status in (ReviewStatus.PENDING, ReviewStatus.REVIEWED)
        and _lapsed_holder_id(image_id) == user.pk
    ):
        if transition(
            image,
            "review_status",
            ReviewStatus.IN_REVIEW,
            actor=user,
            note="lease taken back",
            fields={"leased_by": user, "lease_expires_at": until},
        ):
            return until
    raise NotHeld("You do not hold this image. Take it (or reopen it) to work on it.")


def _lapsed_holder_id(image_id: int) -> int | None:
    """Who held the image when its lease last expired, if nothing happened to it in the queue since
    (the expiry is its latest event): the person who may take it back by renewing."""
    events = list(
        ImageEvent.objects.filter(image_id=image_id)
        .order_by("-at", "-id")
        .values_list("from_status", "to_status", "actor_id", "note")[:2]
    )
    if len(events) < 2:
        return None
    (last_from, _, _, last_note), (_, before_to, before_actor, _) = events
    if (
        last_from != ReviewStatus.IN_REVIEW
        or last_note != "lease expired"
        or before_to != ReviewStatus.IN_REVIEW
    ):
        return None
    return before_actor


def finish_if_done(image_id: int, user) -> bool:
    """When the user's leased image has no drafts left it becomes reviewed and its lease ends.
    Idempotent; returns True when this call finished it (the caller may then sample it for a second
    look)."""
    if has_drafts(image_id):
        return False
    return transition(
        _image(image_id, ReviewStatus.IN_REVIEW),
        "review_status",
        ReviewStatus.REVIEWED,
        actor=user,
        note="all drafts decided",
        expect={"leased_by": user},
        fields={"leased_by": None, "lease_expires_at": None},
    )


def release_lease(image_id: int, user) -> tuple[str | None, bool]:
    """Give the image back (skip): to the queue when drafts remain, else it is reviewed. Idempotent:
    releasing an image one does not hold changes nothing. Returns the image's review status (None when
    there is no such image) and whether this call finished it."""
    finished = False
    with transaction.atomic():
        if has_drafts(image_id):
            transition(
                _image(image_id, ReviewStatus.IN_REVIEW),
                "review_status",
                ReviewStatus.PENDING,
                actor=user,
                note="released",
                expect={"leased_by": user},
                fields={"leased_by": None, "lease_expires_at": None},
            )
        else:
            finished = finish_if_done(image_id, user)
        status = Image.objects.filter(pk=image_id).values_list("review_status", flat=True).first()
    return status, finished


def mark_pending(image_ids: Iterable[int], *, actor=None, note: str = "new drafts") -> int:
    """Images with new drafts go (back) to the review queue: new → pending, reviewed → pending, each with
    its event. Idempotent; leased images stay leased (their holder sees the new drafts). Returns how
    many this call moved."""
    waiting = (ReviewStatus.NEW, ReviewStatus.REVIEWED)
    moved = 0
    with transaction.atomic(savepoint=False):
        rows = Image.objects.filter(id__in=list(image_ids), review_status__in=waiting)
        for image_id, status in rows.values_list("id", "review_status"):
            moved += transition(
                _image(image_id, status), "review_status", ReviewStatus.PENDING, actor=actor, note=note
            )
    return moved
