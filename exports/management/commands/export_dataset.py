"""python manage.py export_dataset --name NAME --format llava [--format parquet] [--domain SLUG …]
[--status accepted] [--split 0.95] — build the next version of an export now, in this process."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from exports.models import ConversationMode, ExportFormat, ExportSpec, ImageMode, VersionStatus
from exports.services.build import build_version
from exports.services.specs import ExportError, InvalidSpec, allocate_version, create_spec, parse_selection


class Command(BaseCommand):
    help = (
        "Build the next version of the named export synchronously and print its version, path and sha256. "
        "The export is created from the options when the name is new; an existing one is rebuilt as it is "
        "(options that disagree with it are refused)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--format", action="append", choices=ExportFormat.values, dest="formats")
        parser.add_argument("--domain", action="append", dest="domains", metavar="SLUG")
        parser.add_argument("--type", action="append", dest="types")
        parser.add_argument("--status", action="append", dest="statuses")
        parser.add_argument("--model", action="append", dest="models")
        parser.add_argument("--date-from")
        parser.add_argument("--date-to")
        parser.add_argument(
            "--split", type=float, help="fraction of images in the train split (default 0.95)"
        )
        parser.add_argument("--seed", type=int)
        parser.add_argument("--images", choices=ImageMode.values, help="copy (default) or reference")
        parser.add_argument("--conversations", choices=ConversationMode.values)
        parser.add_argument("--by", help="username recorded as the builder")
        parser.add_argument(
            "--captions",
            action="store_true",
            help="Also export each image's accepted caption as a detailed-description record.",
        )

    def handle(self, *args, **opts):
        by = None
        if opts["by"]:
            by = get_user_model().objects.filter(username=opts["by"]).first()
            if by is None:
                raise CommandError(f"no user named {opts['by']}")
        raw_selection = {
            key: opts[key] for key in ("domains", "types", "statuses", "models") if opts[key] is not None
        }
        for key in ("date_from", "date_to"):
            if opts[key]:
                raw_selection[key] = opts[key]
        options = {
            "formats": sorted(set(opts["formats"])) if opts["formats"] else None,
            "train_ratio": opts["split"],
            "seed": opts["seed"],
            "image_mode": opts["images"],
            "conversation_mode": opts["conversations"],
            "include_captions": opts["captions"],
        }
        spec = ExportSpec.objects.filter(name=opts["name"]).first()
        try:
            if spec is None:
                spec = create_spec(
                    opts["name"],
                    by=by,
                    selection=raw_selection,
                    **{k: v for k, v in options.items() if v is not None},
                )
                self.stderr.write(f"created export {spec.name}")
            else:
                self._check_same(spec, raw_selection, options)
            version = allocate_version(spec, by=by)
        except InvalidSpec as exc:
            raise CommandError(str(exc)) from exc
        version = build_version(version, actor=by)
        if version.status != VersionStatus.DONE:
            raise CommandError(f"{spec.name} v{version.number} failed: {version.error}")
        path = settings.EXPORTS_ROOT / version.file_path
        self.stdout.write(f"version: {spec.name} v{version.number}")
        self.stdout.write(f"path: {path}")
        self.stdout.write(f"sha256: {version.sha256}")
        self.stdout.write(
            f"instructions: {version.counts['instructions']} records: {version.counts['records']} "
            f"skipped: {version.counts['skipped_invalid']} bytes: {version.size_bytes}"
        )

    def _check_same(self, spec: ExportSpec, raw_selection: dict, options: dict) -> None:
        """A rebuild reproduces the spec; different options belong to a new export name."""
        differences = []
        if raw_selection:
            try:
                wanted = parse_selection({**spec.selection, **raw_selection}).as_json()
            except ExportError as exc:
                raise CommandError(str(exc)) from exc
            if wanted != spec.selection:
                differences.append("selection")
        for key, value in options.items():
            if value is not None and value != getattr(spec, key):
                differences.append(key)
        if differences:
            raise CommandError(
                f"export {spec.name} exists with a different {', '.join(differences)}; "
                "rebuild it without those options or choose a new --name"
            )
