"""A deterministic tar writer: fixed order, mtime 0, uid/gid 0, no user names, mode 0644 — so the same
files give byte-identical archives (and the same sha256) whenever and wherever they are built.

Written by hand on top of tarfile.TarInfo.tobuf (headers) so that the archive's sha256 is computed in
the same pass that writes it, with large copy buffers."""

import hashlib
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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


def write_tar(out: Path, members: Iterable[Member]) -> tuple[str, int]:
    """Write `members` (an iterable, in the order given) to `out`; return (sha256, size) of the archive."""
    digest = hashlib.sha256()
    size = 0
    with open(out, "wb") as fp:

        def emit(data: bytes) -> None:
            nonlocal size
            digest.update(data)
            fp.write(data)
            size += len(data)

        for member in members:
            length = member.source.stat().st_size
            emit(_header(member.arcname, length))
            check = hashlib.sha256() if member.expect_sha256 else None
            copied = 0
            with open(member.source, "rb") as src:
                while chunk := src.read(_COPY):
                    if check is not None:
                        check.update(chunk)
                    emit(chunk)
                    copied += len(chunk)
            if copied != length:
                raise MemberChecksumError(f"{member.source} changed size while being archived")
            if check is not None and check.hexdigest() != member.expect_sha256:
                raise MemberChecksumError(
                    f"{member.source} does not match its sha256 {member.expect_sha256} (corrupted file?)"
                )
            if length % _BLOCK:
                emit(b"\0" * (_BLOCK - length % _BLOCK))
        emit(b"\0" * (2 * _BLOCK))
        if size % _RECORD:
            emit(b"\0" * (_RECORD - size % _RECORD))
    return digest.hexdigest(), size


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(_COPY):
            digest.update(chunk)
    return digest.hexdigest()
