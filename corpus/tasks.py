"""Celery tasks of the corpus: thin, take ids, call one service."""

from celery import shared_task

from .services import dataset_import, import_batches, quality


@shared_task(name="corpus.import_batch")
def import_batch(batch_id: int) -> None:
    """Import a staged upload (see corpus/services/import_batches.py). Idempotent; a redelivery is harmless."""
    import_batches.run_import_batch(batch_id)


@shared_task(name="corpus.sweep")
def sweep() -> None:
    """Run by Celery beat every SWEEP_INTERVAL: fail abandoned import batches and dataset imports and delete the
    staging folders of ended ones. Idempotent; safe with two beats."""
    import_batches.sweep_import_batches()
    dataset_import.sweep_dataset_imports()


@shared_task(name="corpus.import_dataset")
def import_dataset(import_id: int) -> None:
    """Run a staged dataset import (corpus/services/dataset_import.py), then the automatic checks on its
    images. Idempotent: a redelivery resumes after the last committed record, a finished import is left
    alone and its checks run again (they store only what changed)."""
    dataset_import.run_dataset_import(import_id)
    quality.check_dataset_import(import_id)
