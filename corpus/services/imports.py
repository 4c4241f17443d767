"""Image import: the one path by which image files become Image rows (command, upload page, API, demo).

Files are streamed one at a time — a folder is walked lazily and zip members are read one by one — so a
10,000-image folder never sits in memory. Each file is hashed while it is read, verified by Pillow, checked
against the pixel limit before it is decoded, deduplicated by sha256 and flagged as a near-duplicate by
perceptual hash.
"""

import hashlib
import io
import logging
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import imagehash
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from ..models import Domain, Image
from .near_duplicates import NearDuplicateIndex

log = logging.getLogger(__name__)

# Formats we keep. Pillow opens more (PSD, EPS, …) but models and browsers do not all read them.
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
CHUNK = 1024 * 1024
# Files up to this size are spooled in memory while hashed; larger ones go to a temp file.
SPOOL_MAX = 8 * 1024 * 1024

IMPORTED = "imported"
DUPLICATE = "duplicate"
REJECTED = "rejected"


@dataclass
class FileResult:
    name: str
    status: str  # imported | duplicate | rejected
    reason: str = ""
    image_id: int | None = None
    duplicate_of: int | None = None  # the existing image an exact duplicate matches
    near_duplicate_of: int | None = None  # the existing image an imported one looks like

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "image_id": self.image_id,
            "duplicate_of": self.duplicate_of,
            "near_duplicate_of": self.near_duplicate_of,
        }


@dataclass
class ImportSummary:
    """What one import did. `near_duplicates` is the subset of `imported` flagged as looking like an
    image already in the domain. `unreadable` lists paths or archives that could not be opened at all."""

    imported: list[FileResult] = field(default_factory=list)
    duplicates: list[FileResult] = field(default_factory=list)
    near_duplicates: list[FileResult] = field(default_factory=list)
    rejected: list[FileResult] = field(default_factory=list)
    unreadable: list[FileResult] = field(default_factory=list)

    @property
    def files_read(self) -> int:
        return len(self.imported) + len(self.duplicates) + len(self.rejected)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected) + len(self.unreadable)

    @property
    def results(self) -> list[FileResult]:
        return [*self.imported, *self.duplicates, *self.rejected, *self.unreadable]

    def add(self, result: FileResult) -> None:
        if result.status == IMPORTED:
            self.imported.append(result)
            if result.near_duplicate_of:
                self.near_duplicates.append(result)
        elif result.status == DUPLICATE:
            self.duplicates.append(result)
        else:
            self.rejected.append(result)

    def as_dict(self) -> dict:
        return {
            "imported": len(self.imported),
            "duplicates": len(self.duplicates),
            "near_duplicates": len(self.near_duplicates),
            "rejected": len(self.rejected),
            "unreadable": len(self.unreadable),
            "files": [r.as_dict() for r in self.results],
        }

    def lines(self) -> list[str]:
        """The summary for people: counts, then one line per file that was not simply imported."""
        out = [
            f"imported: {len(self.imported)} (near-duplicates flagged: {len(self.near_duplicates)})",
            f"duplicates skipped: {len(self.duplicates)}",
            f"rejected: {len(self.rejected)}",
        ]
        if self.unreadable:
            out.append(f"could not be read: {len(self.unreadable)}")
        for r in self.near_duplicates:
            out.append(f"  near-duplicate  {r.name}: looks like image {r.near_duplicate_of}")
        for r in self.duplicates:
            out.append(f"  duplicate       {r.name}: {r.reason}")
        for r in [*self.rejected, *self.unreadable]:
            out.append(f"  rejected        {r.name}: {r.reason}")
        return out


@dataclass
class ImportSource:
    """One file to import: a name for reports and a way to open its bytes (opened only when its turn
    comes, so that a folder or an archive is never read ahead)."""

    name: str
    open: Callable[[], IO[bytes]]
    filename: str = ""  # the file's own name, stored as Image.original_name (default: from `name`)


class UnreadableSource(Exception):
    """A path or archive that cannot be opened at all (missing, not a zip, permission denied)."""


# --- where files come from --------------------------------------------------------------------------


def sources_from_zip(opener: Callable[[], IO[bytes]], label: str) -> Iterator[ImportSource | FileResult]:
    try:
        handle = opener()
    except OSError as exc:
        yield FileResult(label, REJECTED, f"cannot open the zip archive: {exc}")
        return
    with handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (OSError, zipfile.BadZipFile) as exc:
            yield FileResult(label, REJECTED, f"cannot open the zip archive: {exc}")
            return
        with archive:
            # Members are opened one at a time, when the import reaches them.
            for info in archive.infolist():
                if info.is_dir() or _hidden(info.filename):
                    continue
                yield ImportSource(
                    printable_name(f"{label}:{info.filename}"),
                    lambda info=info: archive.open(info),
                    filename=printable_name(Path(info.filename).name),
                )


def printable_name(name: str) -> str:
    """A file name as it is reported and stored: without control characters (a NUL byte cannot be stored
    in PostgreSQL text at all)."""
    return "".join(ch for ch in name if ch.isprintable())


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in Path(name).parts)


def sources_from_paths(paths: Iterable[str | Path]) -> Iterator[ImportSource | FileResult]:
    """Files, folders (recursive, sorted, hidden files skipped) and .zip archives, lazily. A path that
    does not exist is yielded as a rejected FileResult rather than raised, so the import goes on."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    yield from _path_sources(Path(root) / name)
        elif path.is_file():
            yield from _path_sources(path)
        else:
            yield FileResult(str(path), REJECTED, "no such file or folder")


def _path_sources(path: Path) -> Iterator[ImportSource | FileResult]:
    if path.suffix.lower() == ".zip":
        yield from sources_from_zip(lambda: open(path, "rb"), str(path))
    else:
        yield ImportSource(str(path), lambda: open(path, "rb"))


def count_paths(paths: Iterable[str | Path]) -> int:
    """How many files the paths hold (zip members counted from the archive's directory) — for a
    progress bar's total. Reads names only, never file contents."""
    return sum(1 for _ in sources_from_paths(paths))


def sources_from_uploads(files: Iterable) -> Iterator[ImportSource | FileResult]:
    """Django UploadedFile objects (browser or API upload); a .zip upload is expanded member by member."""
    for upload in files:
        name = printable_name(os.path.basename(upload.name or "")) or "upload"
        if name.lower().endswith(".zip"):
            yield from sources_from_zip(lambda upload=upload: upload, name)
        else:
            yield ImportSource(name, lambda upload=upload: upload)


# --- importing ------------------------------------------------------------------------------------


class _Rejected(Exception):
    pass


@contextmanager
def _spooled_copy(stream: IO[bytes], max_bytes: int):
    """Copy a stream into a spooled temp file, hashing it on the way; refuse it past max_bytes."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX) as spool:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise _Rejected(f"file is larger than the limit of {max_bytes // (1024 * 1024)} MB")
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise _Rejected("empty file")
        spool.seek(0)
        yield spool, digest.hexdigest()


def _inspect(spool: IO[bytes], max_pixels: int) -> tuple[PILImage.Image, str]:
    """Verify the file and decode it; returns the decoded image and its format. Every way a file can be
    bad becomes _Rejected with a reason a person understands."""
    with warnings.catch_warnings():
        # Pillow warns (and past 2× its own limit raises) on decompression bombs; both mean reject.
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            with PILImage.open(spool) as probe:
                fmt = probe.format or ""
                if fmt == "MPO":  # phone cameras' multi-picture JPEGs: the first picture is a plain JPEG
                    fmt = "JPEG"
                width, height = probe.size  # from the header: nothing decoded yet
                if fmt not in ALLOWED_FORMATS:
                    raise _Rejected(f"unsupported image format {fmt or 'unknown'}")
                if width * height > max_pixels:
                    raise _Rejected(
                        f"image is {width}×{height} = {width * height:,} pixels, above the limit of "
                        f"{max_pixels:,} (IMAGE_MAX_PIXELS); refused as a possible decompression bomb"
                    )
                probe.verify()
            spool.seek(0)
            image = PILImage.open(spool)
            image.load()  # verify() does not decode; load() catches truncated data
        except _Rejected:
            raise
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
            # Pillow's own limit fired while reading the header (it is checked inside open()).
            raise _Rejected(
                f"image has more pixels than Pillow's limit ({PILImage.MAX_IMAGE_PIXELS:,}) and above "
                f"IMAGE_MAX_PIXELS ({max_pixels:,}); refused as a possible decompression bomb"
            ) from exc
        except UnidentifiedImageError as exc:
            raise _Rejected("not an image Pillow can read") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _Rejected(f"corrupt or truncated image: {exc}") from exc
    return image, fmt


def _thumbnail_bytes(image: PILImage.Image, size: int) -> bytes:
    thumb = ImageOps.exif_transpose(image) if image.format == "JPEG" else image.copy()
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGBA")
        background = PILImage.new("RGB", thumb.size, (255, 255, 255))
        background.paste(thumb, mask=thumb.getchannel("A"))
        thumb = background
    thumb.thumbnail((size, size))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=82)
    return buf.getvalue()


def import_one(
    item: ImportSource,
    *,
    domain: Domain,
    index: NearDuplicateIndex,
    by=None,
    source: str = "",
    license: str = "",
    prior_knowledge: str = "",
    is_sample: bool = False,
) -> FileResult:
    """Import one file. Idempotent: an image already stored (same sha256) is reported as a duplicate."""
    try:
        stream = item.open()
    except OSError as exc:
        return FileResult(item.name, REJECTED, f"cannot read the file: {exc}")
    try:
        with _spooled_copy(stream, settings.IMAGE_MAX_BYTES) as (spool, sha256):
            existing = Image.objects.filter(sha256=sha256).values_list("id", flat=True).first()
            if existing:
                return FileResult(
                    item.name, DUPLICATE, f"same file as image {existing}", duplicate_of=existing
                )
            image, fmt = _inspect(spool, settings.IMAGE_MAX_PIXELS)
            with image:
                phash = str(imagehash.phash(image))
                thumb = _thumbnail_bytes(image, settings.THUMBNAIL_SIZE)
                width, height = image.size
            near = index.nearest(phash)
            spool.seek(0)
            row = Image(
                sha256=sha256,
                phash=phash,
                format=fmt,
                width=width,
                height=height,
                domain=domain,
                original_name=(item.filename or os.path.basename(item.name))[:255],
                source=source,
                license=license,
                prior_knowledge=prior_knowledge,
                is_sample=is_sample,
                imported_by=by,
                near_duplicate_of_id=near,
            )
            ext = ALLOWED_FORMATS[fmt]
            row.file.save(f"{sha256}.{ext}", File(spool), save=False)
            row.thumbnail.save(f"{sha256}.jpg", ContentFile(thumb), save=False)
            # Saving the file re-reads its dimensions through the storage, which can come back empty;
            # we decoded the image already, so set them from that.
            row.width, row.height = width, height
            try:
                with transaction.atomic():
                    row.save()
            except IntegrityError:
                # Another import stored the same file between our check and our insert.
                row.file.delete(save=False)
                row.thumbnail.delete(save=False)
                existing = Image.objects.filter(sha256=sha256).values_list("id", flat=True).first()
                return FileResult(
                    item.name, DUPLICATE, f"same file as image {existing}", duplicate_of=existing
                )
            index.add(row.pk, phash)
            return FileResult(item.name, IMPORTED, image_id=row.pk, near_duplicate_of=near)
    except _Rejected as exc:
        return FileResult(item.name, REJECTED, str(exc))
    except (OSError, zipfile.BadZipFile) as exc:
        return FileResult(item.name, REJECTED, f"cannot read the file: {exc}")
    finally:
        stream.close()


def import_images(
    sources: Iterable[ImportSource | FileResult],
    *,
    domain: Domain,
    by=None,
    source: str = "",
    license: str = "",
    prior_knowledge: str = "",
    is_sample: bool = False,
    on_result: Callable[[FileResult], None] | None = None,
) -> ImportSummary:
    """Import every source into `domain`, one file at a time, and say what happened to each.

    Idempotent: re-importing the same files reports them as duplicates. Bad files never stop the import.
    Each imported file commits on its own, so an interrupted import keeps what it stored."""
    summary = ImportSummary()
    index = NearDuplicateIndex.for_domain(domain, settings.NEAR_DUPLICATE_DISTANCE)
    for item in sources:
        if isinstance(item, FileResult):
            result = item
            summary.unreadable.append(result)
        else:
            result = import_one(
                item,
                domain=domain,
                index=index,
                by=by,
                source=source,
                license=license,
                prior_knowledge=prior_knowledge,
                is_sample=is_sample,
            )
            summary.add(result)
        if result.status == REJECTED:
            log.debug("import: rejected %s: %s", result.name, result.reason)
        if on_result:
            on_result(result)
    return summary
