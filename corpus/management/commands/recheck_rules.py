"""python manage.py recheck_rules — check every instruction not yet known valid under the current rules."""

import time

from django.core.management.base import BaseCommand

from corpus.rules import RULES_VERSION
from corpus.services.items import recheck_rules


class Command(BaseCommand):
    help = (
        "Check every instruction whose content is not yet known to pass the current type rules "
        "(corpus.rules.RULES_VERSION) and remember the ones that do, so exports need not check them "
        "again. Run it after raising RULES_VERSION or after writing instructions by other means than "
        "the app; exports are correct without it, only slower."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, batch_size, **options):
        started = time.monotonic()
        counts = recheck_rules(batch_size=batch_size)
        self.stdout.write(
            f"rules v{RULES_VERSION}: checked {counts['checked']} instructions in "
            f"{time.monotonic() - started:.1f}s — {counts['valid']} valid, {counts['invalid']} invalid"
        )
