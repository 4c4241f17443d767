"""What changed between two built versions of one export: instructions added, removed, and changed
(same id, another revision), with counts by domain and type.

Computed from the versions' own manifest.json (read from their archives, line by line), never from the
live tables, so a diff stays true after the data moved on. Memory: a map of the older version's
instruction ids to (revision, domain, type), and the list of changes."""

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

from exports.models import ExportVersion, VersionStatus

from .build import INDEX_OPEN
from .specs import ExportError

CHANGE_FIELDS = ["id", "change", "old_version", "new_version", "domain", "type"]


@dataclass
class Diff:
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


def iter_manifest_index(version: ExportVersion) -> Iterator[tuple[int, int, str, str, str]]:
    """(id, version, domain, type, split) of every instruction in the version's manifest.json."""
    path = Path(settings.EXPORTS_ROOT) / version.file_path
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
    """Compare two done versions of the same export. Raises ExportError otherwise."""
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
    """diff_versions, computed once per pair: both versions are immutable, so their diff is too. Kept as
    JSON beside the archives (written atomically); the next page view or download reads it."""
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
