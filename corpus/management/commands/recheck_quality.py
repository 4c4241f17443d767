"""python manage.py recheck_quality — run the automatic checks on every image with an instruction not yet
checked under the current checks (corpus.checks.CHECKS_VERSION)."""

import time

from django.core.management.base import BaseCommand

from corpus.checks import CHECKS_VERSION
from corpus.services.quality import recheck_quality


class Command(BaseCommand):
    help = (
        "Run the automatic checks (flags, never rejections) for every image with a draft or accepted "
        "instruction not yet checked under corpus.checks.CHECKS_VERSION: after raising it, or after "
        "writing instructions by other means than the app. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size, **options):
        started = time.monotonic()
        images = recheck_quality(batch_size=batch_size)
        self.stdout.write(
            f"checks v{CHECKS_VERSION}: checked {images} images in {time.monotonic() - started:.1f}s"
        )
