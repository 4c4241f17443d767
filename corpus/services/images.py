"""Bulk changes to images that the image browser offers: moving them to another domain, and (through
corpus.services.review_state.mark_pending, one event per image) sending those with drafts to the review
queue."""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from ..models import Caption, Domain, Image, Instruction, ItemStatus, ReviewStatus
from .review_state import mark_pending


@dataclass(frozen=True)
class BulkResult:
    changed: int
    skipped: int


def move_images_to_domain(image_ids: list[int], *, domain: Domain) -> BulkResult:
    """Move the images to `domain`. Idempotent (an image already there counts as changed: it is where it
    was asked to be). An image someone is reviewing right now stays where it is: its reviewer works to
    the guidelines of the domain they took it in."""
    ids = sorted(set(image_ids))
    with transaction.atomic():
        movable = Image.objects.filter(pk__in=ids).exclude(review_status=ReviewStatus.IN_REVIEW)
        changed = movable.update(domain=domain)
    return BulkResult(changed=changed, skipped=len(ids) - changed)


def queue_for_review(image_ids: list[int], *, by=None) -> BulkResult:
    """Send the images that have draft captions or instructions to the review queue (new or reviewed →
    pending; one being reviewed stays leased). Images without drafts have nothing to review: skipped.
    Idempotent."""
    ids = sorted(set(image_ids))
    drafts = Q(Exists(Caption.objects.filter(image=OuterRef("pk"), status=ItemStatus.DRAFT))) | Q(
        Exists(Instruction.objects.filter(image=OuterRef("pk"), status=ItemStatus.DRAFT))
    )
    with_drafts = list(Image.objects.filter(drafts, pk__in=ids).values_list("pk", flat=True))
    changed = mark_pending(with_drafts, actor=by, note="queued for review from the image browser")
    return BulkResult(changed=changed, skipped=len(ids) - changed)
