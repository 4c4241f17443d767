"""Celery tasks of the exports app: thin — fetch by id, call one service."""

import logging

from celery import shared_task
from django.conf import settings

from exports.models import ExportVersion
from exports.services.build import build_version
from exports.services.recovery import sweep_builds

log = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.EXPORTS_BUILD_SOFT_TIME_LIMIT,
    time_limit=settings.EXPORTS_BUILD_SOFT_TIME_LIMIT + 60,
)
def build_export_version(version_id: int) -> None:
    """Build one export version. Idempotent: a redelivered task finds the version done, or building under
    a live heartbeat (left alone), or building under a silent one (handed to recovery, see
    exports.services.recovery)."""
    version = ExportVersion.objects.filter(pk=version_id).first()
    if version is None:
        log.warning("export version %s does not exist; nothing to build", version_id)
        return
    build_version(version)


@shared_task(name="exports.sweep")
def sweep() -> None:
    """Run by Celery beat every SWEEP_INTERVAL: restart or fail builds whose worker died, send the task of
    versions queued for longer than EXPORTS_QUEUED_TIMEOUT again, remove work folders nobody owns.
    Idempotent; safe with two beats (compare-and-swap)."""
    sweep_builds()
