"""The queue's "most flags first" order: the pending image whose drafts carry the most automatic-check
flags (corpus.Image.n_flags, kept by corpus.services.quality) is leased first, then the oldest.

Built on the queue's public take_image (the same move, lease and event as "Review this image"); the pick
reads image_flagged_pending_idx ((domain, n_flags DESC, id) WHERE pending) once per domain, so it costs a
few index probes whatever the size of the queue.
"""

from django.db import connection, transaction

from corpus.models import Domain, Image, ReviewStatus

from . import queue


def _best_per_domain(domain_ids: list[int]) -> list[tuple[int, int]]:
    """(n_flags, id) of each domain's most-flagged pending image, one index probe per domain."""
    picks = []
    for domain_id in domain_ids:
        row = (
            Image.objects.filter(domain_id=domain_id, review_status=ReviewStatus.PENDING)
            .order_by("-n_flags", "id")
            .values_list("n_flags", "id")
            .first()
        )
        if row is not None:
            picks.append(row)
    return picks


def claim_most_flagged(annotator, *, domain_ids: list[int] | None = None, attempts: int = 5) -> int | None:
    """Lease the pending image with the most flags (oldest first among equals) of the domains (all active
    ones if none) to `annotator`; None when nothing is pending. Not idempotent: each call claims another
    image. Two annotators asking at once get two images: the pick is locked (SKIP LOCKED on PostgreSQL)
    and take_image refuses an image someone else took meanwhile — the loser tries the next."""
    domains = [
        int(d) for d in (domain_ids or Domain.objects.filter(is_active=True).values_list("id", flat=True))
    ]
    skip: set[int] = set()
    for _ in range(attempts):
        picks = sorted(((-n, pk) for n, pk in _best_per_domain(domains) if pk not in skip))
        if not picks:
            return None
        image_id = picks[0][1]
        with transaction.atomic():
            locked = Image.objects.filter(pk=image_id, review_status=ReviewStatus.PENDING)
            if connection.vendor == "postgresql":
                locked = locked.select_for_update(skip_locked=True)
            if not locked.exists():
                skip.add(image_id)
                continue
            try:
                queue.take_image(image_id, annotator)
            except queue.LeaseError:
                skip.add(image_id)
                continue
        return image_id
    return None
