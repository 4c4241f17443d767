"""Celery tasks of the review app: thin — call one service."""

import logging

from celery import shared_task

from .services import queue

log = logging.getLogger(__name__)


@shared_task(name="review.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Return expired review and second-pass leases to their queues (Celery beat, every SWEEP_INTERVAL
    seconds). Idempotent and safe with two beats: every move is a compare-and-swap (see queue.sweep)."""
    moved = queue.sweep()
    if any(moved.values()):
        log.info(
            "review sweep: %(leases)s lease(s) and %(second_passes)s second pass(es) returned, "
            "%(samples_recovered)s missed second-pass sample(s) made",
            moved,
        )
    return moved


@shared_task(name="review.auto_accept", ignore_result=True)
def auto_accept() -> dict:
    """Review by exception for every domain that has it on (Celery beat, every SWEEP_INTERVAL seconds).
    Idempotent: a second run finds nothing left to accept."""
    from .services import auto_accept as service

    counts = service.run_all()
    if counts:
        log.info("auto-accept: %s", counts)
    return counts
