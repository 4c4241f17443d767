"""A deterministic tar writer: fixed order, mtime 0, uid/gid 0, no user names, mode 0644 — so the same
files give byte-identical archives (and the same sha256) whenever and wherever they are built.

Written by hand on top of tarfile.TarInfo.tobuf (headers) so that the archive's sha256 is computed in
the same pass that writes it. The hashing runs in a worker thread (hashlib releases the GIL on large
buffers), so it overlaps the copying — and, for the data files, the database stream: `HashingWriter`
hashes a data file while it is being written, so no second pass reads it back.

One data file (the build's first JSON one, usually train's) is not copied at all: it is written
straight into the archive as its first member (`open_first_member`), its header filled in once its
size is known, and that part of the archive is hashed by reading it back (0.17 s for 300 MB). Other
files the build wrote itself (no `expect_sha256`) are copied into the archive by the kernel
(`os.copy_file_range`: no bytes through Python) while the worker thread hashes them from the page
cache (300 MB in 0.22 s instead of 0.72 s for read + write here). Images (which carry the sha256 they
must have) are read once, checked and written, as before."""

import errno
import hashlib
import os
import queue
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 20 blocks, what tarfile pads to
_COPY = 1 << 20


class MemberChecksumError(Exception):
    """A file's bytes do not match the sha256 it was expected to have (e.g. a corrupted image)."""


@dataclass(frozen=True)
class Member:
    arcname: str
    source: Path
    expect_sha256: str | None = None  # verified while copying when given


def _header(arcname: str, size: int) -> bytes:
    info = tarfile.TarInfo(arcname)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


@dataclass(frozen=True)
class _FileSpan:
    path: Path
    length: int


class BackgroundSha256:
    """sha256 of a stream of bytes chunks, computed in a worker thread; when `fp` is given, the thread
    also writes each chunk to it (in order). At most `depth` chunks wait, so memory stays bounded."""

    def __init__(self, fp: BinaryIO | None = None, *, depth: int = 16):
        self._fp = fp
        self._digest = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        update, fp = self._digest.update, self._fp
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so the producer never blocks
            try:
                if isinstance(chunk, _FileSpan):
                    self._hash_file(chunk)
                    continue
                update(chunk)
                if fp is not None:
                    fp.write(chunk)
            except BaseException as exc:  # re-raised in the producer by hexdigest()
                self._error = exc

    def _hash_file(self, span: "_FileSpan") -> None:
        """The first `span.length` bytes of the file (which may grow meanwhile, past them)."""
        buffer = memoryview(bytearray(_COPY))
        remaining = span.length
        with open(span.path, "rb", buffering=0) as src:
            while remaining and (read := src.readinto(buffer[: min(_COPY, remaining)])):
                self._digest.update(buffer[:read])
                remaining -= read
        if remaining:
            raise MemberChecksumError(f"{span.path} changed size while being archived")

    def update(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def update_file(self, path: Path, length: int) -> None:
        """Hash the first `length` bytes of the file at `path` next (read by the worker thread; not
        written to `fp`). For bytes nobody changes meanwhile."""
        if self._error is not None:
            raise self._error
        self._queue.put(_FileSpan(path, length))

    def hexdigest(self) -> str:
        """Wait for the queued chunks; the digest of all of them."""
        self.close()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class HashingWriter:
    """A write-only binary file that hashes what it writes (in a worker thread, see BackgroundSha256).
    Only for callers that pass bytes they do not mutate afterwards (the JSON writers)."""

    def __init__(self, fp: BinaryIO):
        self._fp = fp
        self._sha = BackgroundSha256(fp)
        self.size = 0

    def write(self, data: bytes) -> int:
        data = bytes(data)  # a no-op for bytes; a copy for a reused buffer
        self._sha.update(data)
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> None:
        self._sha.close()
        self._fp.close()


def open_first_member(out: Path) -> BinaryIO:
    """Start the archive `out` with a member whose bytes are written straight into it, never copied:
    the returned file is positioned after room for the member's header, which `write_tar(out, …,
    first=arcname)` fills in once the size is known. (At 1M instructions that member is ~280 MB that
    would otherwise be written twice — and fresh page-cache pages cost ~1.7 ms per MB on this VM.)"""
    fp = open(out, "wb", buffering=_COPY)  # noqa: SIM115 - the caller closes it
    fp.write(bytes(_BLOCK))
    return fp


def write_tar(out: Path, members: Iterable[Member], *, first: str | None = None) -> tuple[str, int]:
    """Write `members` (an iterable, in the order given) to `out` and fsync it; return (sha256, size) of
    the archive. With `first`, `out` was begun by `open_first_member` and already holds the bytes of the
    member named `first`: its header goes in front of them and `members` follow.

    A member without `expect_sha256` must be a file the caller wrote and nobody changes meanwhile: it is
    copied by the kernel and hashed from the file by the worker thread."""
    digest = BackgroundSha256(depth=4)  # 1 MiB chunks: a few MiB in flight at most
    size = 0
    with open(out, "r+b" if first else "wb", buffering=0) as fp:
        try:

            def emit(data: bytes) -> None:
                nonlocal size
                digest.update(data)  # hashed by the worker thread while this one writes
                _write_all(fp, data)
                size += len(data)

            if first is not None:
                length = fp.seek(0, os.SEEK_END) - _BLOCK
                if length < 0:
                    raise ValueError(f"{out} was not begun by open_first_member")
                os.pwrite(fp.fileno(), _header(first, length), 0)
                size = _BLOCK + length
                if length % _BLOCK:
                    _write_all(fp, bytes(_BLOCK - length % _BLOCK))
                    size += _BLOCK - length % _BLOCK
                digest.update_file(out, size)  # read back while the rest is appended
            for member in members:
                length = member.source.stat().st_size
                emit(_header(member.arcname, length))
                if member.expect_sha256 is None:
                    digest.update_file(member.source, length)
                    _copy_file(member.source, fp, length)
                    size += length
                else:
                    _copy_checked(member, emit, length)
                if length % _BLOCK:
                    emit(b"\0" * (_BLOCK - length % _BLOCK))
            emit(b"\0" * (2 * _BLOCK))
            if size % _RECORD:
                emit(b"\0" * (_RECORD - size % _RECORD))
            os.fsync(fp.fileno())  # on disk before anyone publishes it as done (0.09 s for 300 MB here)
        finally:
            digest.close()
    return digest.hexdigest(), size


def _copy_checked(member: Member, emit, length: int) -> None:
    """Copy through Python, checking the bytes against the member's expected sha256."""
    check = hashlib.sha256()
    copied = 0
    with open(member.source, "rb", buffering=0) as src:
        while chunk := src.read(_COPY):
            check.update(chunk)
            emit(chunk)
            copied += len(chunk)
    if copied != length:
        raise MemberChecksumError(f"{member.source} changed size while being archived")
    if check.hexdigest() != member.expect_sha256:
        raise MemberChecksumError(
            f"{member.source} does not match its sha256 {member.expect_sha256} (corrupted file?)"
        )


def _write_all(out: BinaryIO, data: bytes) -> None:
    """An unbuffered write may take only part of the bytes: write until all are taken."""
    view = memoryview(data)
    while view:
        view = view[out.write(view) :]


_copy_file_range = getattr(os, "copy_file_range", None)  # Linux only


def _copy_file(source: Path, out: BinaryIO, length: int) -> None:
    """Append `length` bytes of `source` to the unbuffered `out` at its current position: in the kernel
    where it can (copy_file_range), else through a buffer."""
    copied = 0
    with open(source, "rb", buffering=0) as src:
        try:
            while _copy_file_range is not None and copied < length:
                step = _copy_file_range(src.fileno(), out.fileno(), length - copied)
                if step == 0:
                    break
                copied += step
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
        # Not supported here (or stopped short): copy_file_range moved both files' offsets by what it
        # copied, so the rest goes through a buffer from there.
        while copied < length and (chunk := src.read(min(_COPY, length - copied))):
            _write_all(out, chunk)
            copied += len(chunk)
    if copied != length:
        raise MemberChecksumError(f"{source} changed size while being archived")


def fsync_directory(path: Path) -> None:
    """Make a rename into `path` durable (POSIX: the directory entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(_COPY):
            digest.update(chunk)
    return digest.hexdigest()
