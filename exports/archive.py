"""A deterministic tar writer: fixed order, mtime 0, uid/gid 0, no user names, mode 0644 — so the same
files give byte-identical archives (and the same sha256) whenever and wherever they are built.

`TarBuilder` appends members at the end of the archive file, written by hand on top of
tarfile.TarInfo.tobuf (headers):
- a member can be written in place (`begin_member` → write → `end_member`): its bytes go straight
  into the archive and its header is filled in once its size is known. The build streams its first
  JSON data file (~280 MB at 1M instructions) and the manifest this way, so they are never written
  twice: fresh page-cache pages cost ~1.7 ms per MB on this VM.
- other files are copied in by the kernel (`os.copy_file_range`: no bytes through Python), or — images,
  which carry the sha256 they must have — read, checked and written.
- the archive's sha256 is computed by a worker thread that reads back each part as soon as it is final
  (from the page cache; hashlib releases the GIL), overlapping the appends that follow.

`HashingWriter` hashes a data file while it is being written (in a worker thread too), so no second
pass reads a data file back for its own sha256."""

import errno
import hashlib
import os
import queue
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 20 blocks, what tarfile pads to
_COPY = 1 << 20


class MemberChecksumError(Exception):
    """A file's bytes do not match the sha256 it was expected to have (e.g. a corrupted image)."""


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
    offset: int
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
        """`span.length` bytes of the file from `span.offset` (it may grow meanwhile, past them)."""
        buffer = memoryview(bytearray(_COPY))
        remaining = span.length
        with open(span.path, "rb", buffering=0) as src:
            src.seek(span.offset)
            while remaining and (read := src.readinto(buffer[: min(_COPY, remaining)])):
                self._digest.update(buffer[:read])
                remaining -= read
        if remaining:
            raise MemberChecksumError(f"{span.path} changed size while being archived")

    def update(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def update_file(self, path: Path, length: int, *, offset: int = 0) -> None:
        """Hash `length` bytes of the file at `path` from `offset` next (read by the worker thread; not
        written to `fp`). For bytes nobody changes meanwhile."""
        if self._error is not None:
            raise self._error
        self._queue.put(_FileSpan(path, offset, length))

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


class TarBuilder:
    """A new tar at `path`, built by appending members; `finish()` ends it, fsyncs it and returns its
    (sha256, size). One member at a time: nothing may be added while an in-place member is open."""

    def __init__(self, path: Path):
        self.path = path
        self._fp = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by finish()/abort()
        self._digest = BackgroundSha256(depth=64)
        self._size = 0  # bytes final so far (the archive's length once finished)
        self._hashed = 0  # of which handed to the digest thread
        self._open: tuple[str, int] | None = None  # the in-place member being written: name, offset

    def begin_member(self, arcname: str) -> BinaryIO:
        """A buffered file to write member `arcname`'s bytes into, in place; close it, then call
        `end_member()`."""
        self._check_idle()
        _write_all(self._fp, bytes(_BLOCK))  # room for the header
        self._open = (arcname, self._size)
        fp = open(self.path, "r+b", buffering=_COPY)  # noqa: SIM115 - the caller closes it
        fp.seek(self._size + _BLOCK)
        return fp

    def end_member(self) -> int:
        """After the file from `begin_member` is closed: write the header in front of the bytes, pad
        them, and return their length."""
        if self._open is None:
            raise ValueError("no member is open")
        arcname, offset = self._open
        end = self._fp.seek(0, os.SEEK_END)
        length = end - offset - _BLOCK
        os.pwrite(self._fp.fileno(), _header(arcname, length), offset)
        self._open = None
        self._size = end
        self._pad(length)
        self._seal()
        return length

    def add_file(self, arcname: str, source: Path, *, expect_sha256: str | None = None) -> None:
        """Copy a file in. Without `expect_sha256` it must be a file the caller wrote and nobody changes
        meanwhile (copied by the kernel); with it, its bytes are checked while copied."""
        self._check_idle()
        length = source.stat().st_size
        self._append(_header(arcname, length))
        if expect_sha256 is None:
            append_file(self._fp, source, length)
        else:
            _copy_checked(source, self._fp, length, expect_sha256)
        self._size += length
        self._pad(length)
        self._seal()

    def add_bytes(self, arcname: str, data: bytes) -> None:
        self._check_idle()
        self._append(_header(arcname, len(data)))
        self._append(data)
        self._pad(len(data))
        self._seal()

    def finish(self) -> tuple[str, int]:
        """End the archive (two zero blocks, padded to a tar record), fsync it, and return (sha256,
        size) once the digest thread has read everything back."""
        self._check_idle()
        try:
            self._append(bytes(2 * _BLOCK))
            if self._size % _RECORD:
                self._append(bytes(_RECORD - self._size % _RECORD))
            self._seal()
            os.fsync(self._fp.fileno())  # on disk before anyone publishes it as done
        finally:
            self._fp.close()
        return self._digest.hexdigest(), self._size

    def abort(self) -> None:
        """Stop the digest thread and close the file (after a failure; the caller removes the file)."""
        self._digest.close()
        self._fp.close()

    def _check_idle(self) -> None:
        if self._open is not None:
            raise ValueError(f"member {self._open[0]} is still open")

    def _append(self, data: bytes) -> None:
        _write_all(self._fp, data)
        self._size += len(data)

    def _pad(self, length: int) -> None:
        if length % _BLOCK:
            self._append(bytes(_BLOCK - length % _BLOCK))

    def _seal(self) -> None:
        """Hand the bytes that are final since the last call to the digest thread."""
        if self._size > self._hashed:
            self._digest.update_file(self.path, self._size - self._hashed, offset=self._hashed)
            self._hashed = self._size


def _copy_checked(source: Path, out: BinaryIO, length: int, expect_sha256: str) -> None:
    """Copy through Python, checking the bytes against the sha256 they must have."""
    check = hashlib.sha256()
    copied = 0
    with open(source, "rb", buffering=0) as src:
        while chunk := src.read(_COPY):
            check.update(chunk)
            _write_all(out, chunk)
            copied += len(chunk)
    if copied != length:
        raise MemberChecksumError(f"{source} changed size while being archived")
    if check.hexdigest() != expect_sha256:
        raise MemberChecksumError(f"{source} does not match its sha256 {expect_sha256} (corrupted file?)")


def _write_all(out: BinaryIO, data: bytes) -> None:
    """An unbuffered write may take only part of the bytes: write until all are taken."""
    view = memoryview(data)
    while view:
        view = view[out.write(view) :]


_copy_file_range = getattr(os, "copy_file_range", None)  # Linux only
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM)


def append_file(out: BinaryIO, source: Path, length: int) -> None:
    """Write `length` bytes of `source` at the position of the seekable file `out` (buffered or not) and
    move past them: in the kernel where it can (copy_file_range, no bytes through Python), else
    through a buffer."""
    out.flush()
    position = out.tell()
    copied = 0
    with open(source, "rb", buffering=0) as src:
        try:
            while _copy_file_range is not None and copied < length:
                step = _copy_file_range(
                    src.fileno(), out.fileno(), length - copied, copied, position + copied
                )
                if step == 0:
                    break
                copied += step
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
        out.seek(position + copied)
        src.seek(copied)
        # Not supported here (or stopped short): the rest goes through a buffer.
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
