"""python manage.py import_dataset PATH --format llava|sharegpt|parquet --domain SLUG [--images DIR|ZIP]
[--name NAME] [--status draft|accepted] [--user USERNAME]"""

import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from corpus.models import DatasetFormat, Domain, ImportBatchStatus, ItemStatus
from corpus.services.dataset_import import Summary, import_dataset, queue_dataset_import
from corpus.services.quality import check_dataset_import


class Command(BaseCommand):
    help = (
        "Import an instruction dataset (LLaVA JSON, ShareGPT/InternVL JSONL, Parquet with embedded images) "
        "into a domain. Images already in the pool are reused; each question/answer turn becomes an "
        "instruction typed by the rules; unreadable records are skipped and named in the summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the data file")
        parser.add_argument("--format", required=True, choices=DatasetFormat.values)
        parser.add_argument("--domain", required=True, help="slug of the domain (see /domains/)")
        parser.add_argument(
            "--images",
            default=None,
            help="folder or .zip holding the images the records name (default: the data file's folder, or "
            "the root of an unpacked export of ours)",
        )
        parser.add_argument("--name", default="", help="the source dataset's name (default: the file name)")
        parser.add_argument(
            "--status", default=ItemStatus.DRAFT, choices=[ItemStatus.DRAFT, ItemStatus.ACCEPTED]
        )
        parser.add_argument("--user", default="", help="username recorded as the importer")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--background",
            action="store_true",
            help="queue the import for a worker (which must see the same paths) and print its page instead of "
            "running it here",
        )

    def handle(
        self, *args, path, format, domain, images, name, status, user, no_progress, background, **options
    ):
        try:
            target = Domain.objects.get(slug=domain)
        except Domain.DoesNotExist:
            known = ", ".join(Domain.objects.values_list("slug", flat=True))
            raise CommandError(f"unknown domain '{domain}'. Known domains: {known}") from None
        importer = None
        if user:
            importer = get_user_model().objects.filter(username=user).first()
            if importer is None:
                raise CommandError(f"unknown user '{user}'")
        data = Path(path)
        if not data.is_file():
            raise CommandError(f"no such file: {path}")
        if images is not None and not Path(images).exists():
            raise CommandError(f"no such folder or .zip: {images}")

        if background:
            queued = queue_dataset_import(
                data,
                format=format,
                domain=target,
                name=name or data.name,
                status=status,
                images=images,
                by=importer,
            )
            self.stdout.write(f"dataset import {queued.pk} queued: /datasets/import/{queued.pk}/")
            return

        bar = tqdm(unit="record", desc="importing", disable=no_progress, file=self.stderr._out)

        def progress(summary) -> None:
            bar.update(summary.records - bar.n)

        result = import_dataset(
            data,
            format=format,
            domain=target,
            name=name or data.name,
            status=status,
            images=images,
            by=importer,
            on_progress=progress,
        )
        bar.close()
        if result.status == ImportBatchStatus.FAILED:
            raise CommandError(f"import {result.pk} failed: {result.error}")
        self.stdout.write(f"dataset import {result.pk} ({result.name}): {result.status}")
        for line in Summary.from_dict(result.summary).lines():
            self.stdout.write(line)
        started = time.monotonic()
        checked = check_dataset_import(result.pk)
        self.stdout.write(f"automatic checks: {checked} images in {time.monotonic() - started:.1f}s")
