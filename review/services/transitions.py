"""The one table of allowed moves of an image's review state, and the one function that changes it."""

from django.db import transaction
from django.utils import timezone

from corpus.models import Image, ReviewStatus

from ..models import EventSubject, ReviewEvent


class InvalidImageTransition(Exception):
    """A move of the image's review state that IMAGE_MOVES does not allow."""


# new → pending: corpus.services.mark_images_pending (new drafts); pending → in_review: a claim;
# in_review → pending: release with drafts left or an expired lease; in_review → reviewed: all drafts
# decided; reviewed → in_review: someone reopens a reviewed image; reviewed → pending: new drafts.
IMAGE_MOVES: dict[str, frozenset[str]] = {
    ReviewStatus.NEW: frozenset({ReviewStatus.PENDING}),
    ReviewStatus.PENDING: frozenset({ReviewStatus.IN_REVIEW}),
    ReviewStatus.IN_REVIEW: frozenset({ReviewStatus.PENDING, ReviewStatus.REVIEWED}),
    ReviewStatus.REVIEWED: frozenset({ReviewStatus.IN_REVIEW, ReviewStatus.PENDING}),
}


def transition(
    image_id: int,
    *,
    from_status: str,
    to_status: str,
    actor=None,
    note: str = "",
    expect: dict | None = None,
    **fields,
) -> bool:
    """Move the image from `from_status` to `to_status` if it is still there (compare-and-swap), writing
    a ReviewEvent in the same transaction. `expect` adds conditions to the swap (e.g. the lease holder);
    `fields` are set with the status. Returns False when the race was lost; never overwrites."""
    if to_status not in IMAGE_MOVES.get(from_status, frozenset()):
        raise InvalidImageTransition(f"an image cannot move from {from_status} to {to_status}")
    with transaction.atomic():
        swapped = Image.objects.filter(pk=image_id, review_status=from_status, **(expect or {})).update(
            review_status=to_status, **fields
        )
        if swapped != 1:
            return False
        ReviewEvent.objects.create(
            image_id=image_id,
            subject=EventSubject.QUEUE,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            at=timezone.now(),
            note=note[:200],
        )
    return True
