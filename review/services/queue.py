"""The annotator queue on top of the image review state (corpus.services.review_state, which holds
every move of it): the next image of an annotator, release with the second-pass sampling of a finished
image, and the scheduled sweep of expired review and second-pass leases (the queue's reads are in
review.selectors).

The claim, take, reopen, renew and release moves — and their errors — are corpus's; review imports them
from there (`queue.claim_next` is `corpus.services.review_state.claim_next`).
"""

from django.db import transaction

from corpus.models import Image, ReviewStatus
from corpus.services import review_state
from corpus.services.review_state import (  # noqa: F401  (the queue's public names)
    PG_PICK_SQL,
    Claim,
    LeaseError,
    LeaseHeld,
    NotHeld,
    claim_next,
    has_drafts,
    lease_duration,
    renew_lease,
    sweep_expired_leases,
    take_image,
)

from . import second_pass


def claim_next_image(annotator, *, domain_ids: list[int] | None = None) -> int | None:
    """claim_next, returning only the image id."""
    claim = claim_next(annotator, domain_ids=domain_ids)
    return claim.image_id if claim else None


def next_image_for(
    annotator, *, domain_ids: list[int] | None = None, leaving: int | None = None
) -> int | None:
    """The image the annotator works on next: one they already hold (oldest lease first — after a closed
    tab, a prefetch, a crash), else a new claim. `leaving` (skip) is released only after the next one is
    chosen, so a skipped image goes back to the queue for others instead of straight back to this user.
    Not idempotent when it claims."""
    held = (
        Image.objects.filter(review_status=ReviewStatus.IN_REVIEW, leased_by=annotator)
        .exclude(pk=leaving)
        .order_by("lease_expires_at")
        .values_list("id", flat=True)
        .first()
    )
    chosen = held if held is not None else claim_next_image(annotator, domain_ids=domain_ids)
    if leaving is not None:
        release_lease(leaving, annotator)
    return chosen


def sweep(*, batch: int = 100, max_batches: int = 100) -> dict[str, int]:
    """The scheduled sweep (Celery beat runs it every SWEEP_INTERVAL seconds as `review.sweep`): every
    expired review lease and second-pass lease goes back, so images return to the queue without anyone
    claiming; and a second-pass sample a crash skipped is made (second_pass.sample_missed). Idempotent,
    and safe with two beats: each move is a compare-and-swap that writes its event only when it wins.
    Returns how many of each it moved or made."""
    leases = 0
    for _ in range(max_batches):
        found, moved = review_state.sweep_batch(batch)
        leases += moved
        # A full batch may hide more behind it, even when another sweep won some of its swaps.
        if found < batch:
            break
    return {
        "leases": leases,
        "second_passes": second_pass.sweep_expired_second_passes(),
        "samples_recovered": second_pass.sample_missed(),
    }


def release_lease(image_id: int, user) -> str | None:
    """Give the image back (skip): to the queue when drafts remain, else it is reviewed (and may be
    sampled for the second pass). Idempotent: releasing an image one does not hold changes nothing.
    Returns the image's review status (None when there is no such image)."""
    with transaction.atomic():
        status, finished = review_state.release_lease(image_id, user)
        if finished:
            second_pass.sample_for_second_pass(image_id, first_reviewer=user)
    return status


def finish_if_done(image_id: int, user) -> bool:
    """When the user's leased image has no drafts left it becomes reviewed, its lease ends, and it may
    be sampled for the second pass. Idempotent; returns True when this call finished it."""
    done = review_state.finish_if_done(image_id, user)
    if done:
        second_pass.sample_for_second_pass(image_id, first_reviewer=user)
    return done
