"""python manage.py import_images PATH... --domain SLUG [--source TEXT] [--license TEXT] [--prior TEXT]"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from corpus.models import Domain
from corpus.services.imports import count_paths, import_images, sources_from_paths


class Command(BaseCommand):
    help = (
        "Import image files, folders (recursively) and .zip archives into a domain. Corrupt files, "
        "non-images and images above IMAGE_MAX_PIXELS are rejected with a reason; exact duplicates are "
        "skipped; near-duplicates are imported and flagged."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="files, folders or .zip archives")
        parser.add_argument("--domain", required=True, help="slug of the domain (see /domains/)")
        parser.add_argument("--source", default="", help="where the images come from")
        parser.add_argument("--license", default="", help="licence text of the images")
        parser.add_argument("--prior", default="", help="prior knowledge (a title or tags) for every image")
        parser.add_argument("--user", default="", help="username recorded as the importer")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, paths, domain, source, license, prior, user, no_progress, **options):
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

        # Counting walks the names only (zip: its directory), never the contents: cheap even at 10k files.
        total = None if no_progress else count_paths(paths)
        bar = tqdm(total=total, unit="file", desc="importing", disable=no_progress, file=self.stderr._out)
        summary = import_images(
            sources_from_paths(paths),
            domain=target,
            by=importer,
            source=source,
            license=license,
            prior_knowledge=prior,
            on_result=lambda _result: bar.update(1),
        )
        bar.close()
        for line in summary.lines():
            self.stdout.write(line)
        if summary.files_read == 0:
            raise CommandError("nothing could be read: no image files found at the given paths")
