"""The archive of a built version on disk: where it is, and whether it still is what was built."""

from pathlib import Path

from django.conf import settings

from exports.archive import file_sha256
from exports.models import ExportVersion, VersionStatus

from .specs import ExportError


class ArchiveMismatch(ExportError):
    """The file on disk is not the archive that was built (missing, resized or altered)."""


def archive_path(version: ExportVersion) -> Path:
    return Path(settings.EXPORTS_ROOT) / version.file_path


def archive_name(version: ExportVersion) -> str:
    return Path(version.file_path).name


def check_archive(version: ExportVersion, *, full: bool) -> Path:
    """The archive's path after checking it exists with its recorded size and, when `full`, sha256.
    Raises ExportError for an unbuilt version and ArchiveMismatch for a file that changed."""
    if version.status != VersionStatus.DONE or not version.file_path:
        raise ExportError(f"{version} is {version.status}; there is nothing to download yet")
    path = archive_path(version)
    if not path.is_file():
        raise ArchiveMismatch(f"the archive of {version} is missing on disk")
    if path.stat().st_size != version.size_bytes:
        raise ArchiveMismatch(f"the archive of {version} has another size than was built")
    if full and file_sha256(path) != version.sha256:
        raise ArchiveMismatch(f"the archive of {version} does not match its sha256 {version.sha256}")
    return path
