"""The images of an imported dataset: found by the path a record names (in a folder or a .zip) or
embedded in the record (Parquet), and brought into the pool through the one image import
(corpus.services.imports.import_one: verify, sha256, perceptual near-duplicates).

An image whose bytes are already in the pool is reused, never copied: every file is hashed (streamed,
never held) and the hashes of a whole batch of records are looked up in one query. Only images the pool
does not hold are decoded and stored. What was resolved is remembered in a bounded LRU (a dataset that
names one image many times hashes it once; memory does not grow with the file).
"""

import hashlib
import io
import os
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings
from django.db import connection

from ..models import Domain, Image
from .dataset_readers import RawRecord
from .imports import DUPLICATE, IMPORTED, ImportSource, import_one, printable_name
from .near_duplicates import NearDuplicateIndex

CACHE_SIZE = 4096


class ImageFolder:
    """Images under a folder; a record's path is relative to it and may not leave it."""

    def __init__(self, root: Path):
        self.root = os.path.realpath(root)
        self.prefix = self.root.rstrip(os.sep) + os.sep

    def opener(self, name: str) -> Callable[[], IO[bytes]] | str:
        # String operations, not Path.resolve(): one realpath per record cost more than the rest of
        # the record's work. A symbolic link inside the folder may still point out of it; the folder is
        # the importer's own (the command) or an upload's staging folder (which holds none).
        path = os.path.normpath(os.path.join(self.root, name.lstrip("/")))
        if not path.startswith(self.prefix):
            return f"image path {name!r} leaves the image folder"
        return lambda: open(path, "rb")

    def close(self) -> None:
        pass


class ImageZip:
    """Images inside a .zip; a record's path is matched to a member as it is, or below the archive's
    one top folder (a zipped `images/` folder)."""

    def __init__(self, path: Path):
        self.archive = zipfile.ZipFile(path)
        self.members: dict[str, zipfile.ZipInfo] = {}
        below_top: dict[str, zipfile.ZipInfo] = {}
        for info in self.archive.infolist():
            if info.is_dir():
                continue
            self.members[info.filename] = info
            parts = PurePosixPath(info.filename).parts
            if len(parts) > 1:
                below_top.setdefault(str(PurePosixPath(*parts[1:])), info)
        for name, info in below_top.items():
            self.members.setdefault(name, info)

    def opener(self, name: str) -> Callable[[], IO[bytes]] | str:
        info = self.members.get(name.removeprefix("./").lstrip("/")) or self.members.get(name)
        if info is None:
            return f"image {name!r} not found in the zip"
        return lambda: self.archive.open(info)

    def close(self) -> None:
        self.archive.close()


class NoImages:
    def opener(self, name: str) -> str:
        return f"image {name!r} named but no image folder or .zip was given"

    def close(self) -> None:
        pass


def image_store(path: str | Path | None):
    """The image folder or .zip at `path` (nothing: records must embed their images)."""
    if not path:
        return NoImages()
    path = Path(path)
    if path.is_dir():
        return ImageFolder(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return ImageZip(path)
    raise FileNotFoundError(f"{path} is neither a folder nor a .zip archive")


@dataclass(slots=True)
class Resolved:
    image_id: int | None = None
    error: str = ""


@dataclass
class ImageTally:
    """What happened to the images, for the summary (lists are capped by the caller)."""

    imported: int = 0
    reused: int = 0
    near_duplicates: int = 0


class ImageResolver:
    """Resolves the images of a batch of records to pool image ids (importing the new ones)."""

    def __init__(self, store, *, domain: Domain, by, source: str, on_reused, on_near_duplicate):
        self.store = store
        self.domain = domain
        self.by = by
        self.source = source
        self.on_reused = on_reused
        self.on_near_duplicate = on_near_duplicate
        self.tally = ImageTally()
        self._cache: OrderedDict[str, Resolved] = OrderedDict()
        self._first_key: OrderedDict[str, str] = OrderedDict()  # sha256 → the key that brought it in
        self._index: NearDuplicateIndex | None = None

    def _remember(self, table: OrderedDict, key: str, value) -> None:
        table[key] = value
        if len(table) > CACHE_SIZE:
            table.popitem(last=False)

    def resolve(self, records: list[RawRecord]) -> list[Resolved]:
        """One Resolved per record, in order: the pool image id, or why the image is unusable."""
        keys: list[str] = []
        pending: dict[str, tuple[str, Callable[[], IO[bytes]], RawRecord]] = {}
        results: dict[str, Resolved] = {}
        for record in records:
            if record.image_bytes is not None:
                data = record.image_bytes
                sha = hashlib.sha256(data).hexdigest()
                key = "sha:" + sha
                name = record.image or f"{record.where} image"
                opener = lambda data=data: io.BytesIO(data)  # noqa: E731
            else:
                key = "path:" + (record.image or "")
                name = record.image or ""
                opener = None
            keys.append(key)
            if key in results or key in pending:
                continue
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                results[key] = cached
                continue
            if opener is None:
                found = self.store.opener(name)
                if isinstance(found, str):
                    results[key] = Resolved(error=found)
                    continue
                opener = found
            pending[key] = (name, opener, record)
        if pending:
            self._resolve_new(pending, results)
        return [results[key] for key in keys]

    def _resolve_new(self, pending: dict, results: dict[str, Resolved]) -> None:
        shas: dict[str, str] = {}
        for key, (_name, opener, _record) in pending.items():
            if key.startswith("sha:"):
                shas[key] = key[4:]
                continue
            try:
                with opener() as fp:
                    shas[key] = hashlib.file_digest(fp, "sha256").hexdigest()
            except (FileNotFoundError, IsADirectoryError):
                results[key] = self._store(key, Resolved(error=f"image {_name!r} not found"))
            except (OSError, zipfile.BadZipFile, EOFError) as exc:
                results[key] = self._store(key, Resolved(error=f"cannot read the image: {exc}"))
        in_pool = _in_pool(set(shas.values()))
        for key, sha in shas.items():
            name, opener, record = pending[key]
            first = self._first_key.get(sha)
            found = in_pool.get(sha)
            if found is not None:
                image_id, source = found
                # Reused: bytes the pool held before this import, or a second file with the same bytes.
                if (first is not None and first != key) or (first is None and source != self.source):
                    self.tally.reused += 1
                    self.on_reused(name, image_id, record)
                self._remember(self._first_key, sha, first or key)
                results[key] = self._store(key, Resolved(image_id=image_id))
                continue
            if self._index is None:
                self._index = NearDuplicateIndex.for_domain(self.domain, settings.NEAR_DUPLICATE_DISTANCE)
            filename = printable_name(PurePosixPath(name).name) or f"{sha[:16]}"
            result = import_one(
                ImportSource(printable_name(name), opener, filename=filename),
                domain=self.domain,
                index=self._index,
                by=self.by,
                source=self.source,
            )
            if result.status == IMPORTED:
                self.tally.imported += 1
                if result.near_duplicate_of:
                    self.tally.near_duplicates += 1
                    self.on_near_duplicate(name, result.image_id, result.near_duplicate_of, record)
                in_pool[sha] = (result.image_id, self.source)
                self._remember(self._first_key, sha, key)
                results[key] = self._store(key, Resolved(image_id=result.image_id))
            elif result.status == DUPLICATE:  # stored by someone else meanwhile
                self.tally.reused += 1
                self.on_reused(name, result.duplicate_of, record)
                in_pool[sha] = (result.duplicate_of, "")
                results[key] = self._store(key, Resolved(image_id=result.duplicate_of))
            else:
                results[key] = self._store(key, Resolved(error=f"image {name!r}: {result.reason}"))

    def _store(self, key: str, resolved: Resolved) -> Resolved:
        self._remember(self._cache, key, resolved)
        return resolved


def _in_pool(shas: set[str]) -> dict[str, tuple[int, str]]:
    """sha256 → (image id, source) of the pool images among `shas`, in one query (on PostgreSQL with
    one array parameter: Django's IN of a thousand placeholders cost more than the lookup itself)."""
    if not shas:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT sha256, id, source FROM {Image._meta.db_table} WHERE sha256 = ANY(%s)", [list(shas)]
            )
            rows = cursor.fetchall()
    else:
        rows = Image.objects.filter(sha256__in=shas).values_list("sha256", "id", "source")
    return {sha: (image_id, source) for sha, image_id, source in rows}
