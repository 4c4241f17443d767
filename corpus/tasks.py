"""Celery tasks of the corpus: thin, take ids, call one service."""

from celery import shared_task

from . import import_batches


@shared_task(name="corpus.import_batch")
def import_batch(batch_id: int) -> None:
    """Import a staged upload (see corpus/import_batches.py). Idempotent; a redelivery is harmless."""
    import_batches.run_import_batch(batch_id)
