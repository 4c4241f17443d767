"""Reads of the exports app that the pages (exports.views) and the API (exports.api) share: the lists of
exports and versions, a version's history and live progress, the archive a download serves, and the diff
between two versions. Nothing here changes a row; writes are in exports.services.

The diff is computed from the versions' own manifest.json (read from their archives, line by line), never
from the live tables, so it stays true after the data moved on. Both versions are immutable, so their
diff is too: it is computed once per pair and kept as JSON beside the archives (derived data, like a
cache; a GET may write it).
"""

import csv
import io
import os
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from exports.archive import file_sha256
from exports.models import ExportSpec, ExportVersion, ExportVersionEvent, VersionStatus
from exports.services import progress
from exports.services.build import INDEX_OPEN
from exports.services.specs import ExportError, InvalidRequest

# --- lists ------------------------------------------------------------------------------------


def specs() -> QuerySet[ExportSpec]:
    """Every export: they are the team's shared datasets, every reader sees all of them."""
    return ExportSpec.objects.all()


def specs_with_versions() -> QuerySet[ExportSpec]:
    """Every export with its creator and its versions with their builders: three queries whatever the
    number of exports (the list page, GET /api/v1/exports/)."""
    return ExportSpec.objects.select_related("created_by").prefetch_related("versions__built_by")


def versions() -> QuerySet[ExportVersion]:
    """Every version with its spec and builder (one query for a list)."""
    return ExportVersion.objects.select_related("spec", "built_by")


def history(version: ExportVersion) -> QuerySet[ExportVersionEvent]:
    """The version's status moves, oldest first, with who made them."""
    return version.events.select_related("actor")


def comparable_versions(version: ExportVersion) -> QuerySet[ExportVersion]:
    """The other built versions of the same export (what a diff may compare this one against)."""
    return version.spec.versions.filter(status=VersionStatus.DONE).exclude(pk=version.pk).only("id", "number")


def progress_of(version: ExportVersion) -> dict | None:
    """{"done", "total", "percent"} while the version waits or builds and its build reported; else None.
    Read from the build's small progress file, never from the database."""
    if version.status in (VersionStatus.QUEUED, VersionStatus.BUILDING):
        return progress.read(version.pk)
    return None


# --- the archive a download serves --------------------------------------------------------------


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


# --- diffs ------------------------------------------------------------------------------------

CHANGE_FIELDS = ["id", "change", "old_version", "new_version", "domain", "type"]


@dataclass
class Diff:
    """What changed between two built versions of one export: instructions added, removed, and changed
    (same id, another revision), with counts by domain and type."""

    old: ExportVersion
    new: ExportVersion
    changes: list[tuple[int, str, int | None, int | None, str, str]] = field(default_factory=list)
    totals: Counter = field(default_factory=Counter)  # change → n (and "unchanged")
    by_domain: dict[str, Counter] = field(default_factory=dict)
    by_type: dict[str, Counter] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "from": {"id": self.old.pk, "number": self.old.number, "sha256": self.old.sha256},
            "to": {"id": self.new.pk, "number": self.new.number, "sha256": self.new.sha256},
            "added": self.totals["added"],
            "removed": self.totals["removed"],
            "changed": self.totals["changed"],
            "unchanged": self.totals["unchanged"],
            "by_domain": {k: dict(v) for k, v in sorted(self.by_domain.items())},
            "by_type": {k: dict(v) for k, v in sorted(self.by_type.items())},
        }


def diff_against(version: ExportVersion, against: str | None, *, among: QuerySet | None = None) -> Diff:
    """The diff between `version` and the version whose id `against` names (a query parameter, looked up
    in `among`, by default every version: 404 when it is not there), older one first. InvalidRequest (400)
    when `against` is not an id, ExportError (409) when the two cannot be compared."""
    against = (against or "").strip()
    if not (against.isascii() and against.isdigit()):
        raise InvalidRequest({"against": ["give the other version's id (?against=<id>)"]})
    other = get_object_or_404(among if among is not None else versions(), pk=int(against))
    old, new = (other, version) if other.number <= version.number else (version, other)
    return cached_diff(old, new)


def iter_manifest_index(version: ExportVersion) -> Iterator[tuple[int, int, str, str, str]]:
    """(id, version, domain, type, split) of every instruction in the version's manifest.json."""
    path = archive_path(version)
    if not version.file_path or not path.is_file():
        raise ExportError(f"{version} has no archive on disk")
    # Seekable mode: walking the members reads their headers only (the data file before manifest.json
    # is skipped by a seek, not read), and the walk stops at the manifest.
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            if member.name != "manifest.json":
                continue
            fp = tar.extractfile(member)
            in_index = False
            for line in fp:
                if not in_index:
                    in_index = line == INDEX_OPEN
                    continue
                line = line.strip().rstrip(b",")
                if line == b"]":
                    return
                yield tuple(orjson.loads(line))
            return
    raise ExportError(f"{version}'s archive holds no manifest.json")


def diff_versions(old: ExportVersion, new: ExportVersion) -> Diff:
    """Compare two done versions of the same export (memory: a map of the older version's instruction
    ids to (revision, domain, type), and the list of changes). Raises ExportError otherwise."""
    if old.spec_id != new.spec_id:
        raise ExportError("a diff compares two versions of the same export")
    for version in (old, new):
        if version.status != VersionStatus.DONE:
            raise ExportError(f"{version} is {version.status}, not built")
    diff = Diff(old=old, new=new)
    before: dict[int, tuple[int, str, str]] = {
        iid: (rev, domain, type_) for iid, rev, domain, type_, _split in iter_manifest_index(old)
    }

    def note(change: str, iid: int, old_rev, new_rev, domain: str, type_: str) -> None:
        diff.totals[change] += 1
        diff.by_domain.setdefault(domain, Counter())[change] += 1
        diff.by_type.setdefault(type_, Counter())[change] += 1
        diff.changes.append((iid, change, old_rev, new_rev, domain, type_))

    for iid, rev, domain, type_, _split in iter_manifest_index(new):
        previous = before.pop(iid, None)
        if previous is None:
            note("added", iid, None, rev, domain, type_)
        elif previous[0] != rev:
            note("changed", iid, previous[0], rev, domain, type_)
        else:
            diff.totals["unchanged"] += 1
    for iid, (rev, domain, type_) in before.items():
        note("removed", iid, rev, None, domain, type_)
    diff.changes.sort()
    return diff


def _cache_path(old: ExportVersion, new: ExportVersion) -> Path:
    return Path(settings.EXPORTS_ROOT) / new.spec.name / "diffs" / f"v{old.number}-v{new.number}.json"


def cached_diff(old: ExportVersion, new: ExportVersion) -> Diff:
    """diff_versions, computed once per pair and kept as JSON beside the archives (written atomically);
    the next page view or download reads it."""
    if old.spec_id != new.spec_id:
        raise ExportError("a diff compares two versions of the same export")
    path = _cache_path(old, new)
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        data = None
    if data and data["from"]["sha256"] == old.sha256 and data["to"]["sha256"] == new.sha256:
        diff = Diff(old=old, new=new)
        diff.changes = [tuple(c[f] for f in CHANGE_FIELDS) for c in data["changes"]]
        diff.totals = Counter({k: data[k] for k in ("added", "removed", "changed", "unchanged")})
        diff.by_domain = {k: Counter(v) for k, v in data["by_domain"].items()}
        diff.by_type = {k: Counter(v) for k, v in data["by_type"].items()}
        return diff
    diff = diff_versions(old, new)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(diff_as_json(diff))
    os.replace(tmp, path)
    return diff


def diff_file_stem(diff: Diff) -> str:
    """The name (without extension) a downloaded diff is saved under."""
    return f"{diff.new.spec.name}-v{diff.old.number}-v{diff.new.number}-diff"


def diff_as_json(diff: Diff) -> bytes:
    return orjson.dumps(
        {
            **diff.summary(),
            "changes": [dict(zip(CHANGE_FIELDS, change, strict=True)) for change in diff.changes],
        },
        option=orjson.OPT_INDENT_2,
    )


def iter_diff_csv(diff: Diff) -> Iterator[str]:
    """The changes as CSV lines (header first), for a streaming response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CHANGE_FIELDS)
    for index, change in enumerate(diff.changes):
        writer.writerow(["" if v is None else v for v in change])
        if index % 1000 == 999:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- before a build, and beside a version -----------------------------------------------------------


def preview_selection(raw: dict) -> dict:
    """What a selection (the export form's fields) matches now: counts and a sample of records.
    InvalidSpec (400) names a bad field. Reads only."""
    from exports.services.rows import preview
    from exports.services.specs import parse_selection

    return preview(parse_selection(raw))


def identical_earlier(version: ExportVersion) -> ExportVersion | None:
    """The earliest other built version of the same export with the same archive bytes (sha256), if any:
    a rebuild with nothing new says so instead of looking like new data."""
    if not version.is_done or not version.sha256:
        return None
    return (
        version.spec.versions.filter(
            status=VersionStatus.DONE, sha256=version.sha256, number__lt=version.number
        )
        .order_by("number")
        .only("id", "number")
        .first()
    )


def latest_done_versions(limit: int = 50) -> QuerySet[ExportVersion]:
    """Built versions, newest first (their counts say what left the studio)."""
    return (
        ExportVersion.objects.filter(status=VersionStatus.DONE)
        .only("id", "counts", "spec_id")
        .order_by("-id")[:limit]
    )


def failed_versions(limit: int = 3) -> QuerySet[ExportVersion]:
    """The latest failed builds, with their error (for the admin's list of recent failures)."""
    return versions().filter(status=VersionStatus.FAILED).order_by("-id")[:limit]


def latest_version_per_spec(limit: int = 5) -> list[tuple[ExportSpec, ExportVersion | None]]:
    """The most recently made exports, each with its newest version (built or not). Two queries."""
    specs_ = list(ExportSpec.objects.order_by("-created_at", "-id")[:limit])
    newest: dict[int, ExportVersion] = {}
    for version in ExportVersion.objects.filter(spec__in=specs_).order_by("spec_id", "-number"):
        newest.setdefault(version.spec_id, version)
    return [(spec, newest.get(spec.pk)) for spec in specs_]
