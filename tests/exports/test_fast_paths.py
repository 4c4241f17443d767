"""The build's speed-ups must not change what it computes: the precomputed split test against
split_of, and the hashing writers (a data file hashed while written, the archive hashed in a worker
thread) against hashlib over the finished bytes."""

import hashlib
import random

import pytest

from exports.archive import BackgroundSha256, HashingWriter, TarBuilder
from exports.services.build import _splitter, split_of


def write_tar(out, members) -> tuple[str, int]:
    """A tar of (name, file, expected sha256 or None) members, all copied in."""
    tar = TarBuilder(out)
    for name, source, expect_sha256 in members:
        tar.add_file(name, source, expect_sha256=expect_sha256)
    return tar.finish()


@pytest.mark.parametrize("ratio", [0.0, 1e-12, 0.05, 0.5, 0.95, 0.999999, 1 - 2**-53, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_the_precomputed_split_agrees_with_split_of(seed, ratio):
    rng = random.Random(seed * 7 + int(ratio * 1000))
    split = _splitter(seed, ratio)
    shas = [hashlib.sha256(rng.randbytes(16)).hexdigest() for _ in range(3000)]
    assert [split(sha) for sha in shas] == [split_of(seed, sha, ratio) for sha in shas]
    if 0 < ratio < 1:  # both sides are reached
        assert {split(sha) for sha in shas} == {"train", "validation"} or ratio < 0.01 or ratio > 0.99


def test_a_hashing_writer_writes_and_hashes_every_byte_in_order(tmp_path):
    path = tmp_path / "data.json"
    rng = random.Random(3)
    chunks = [rng.randbytes(rng.choice([0, 1, 511, 4096, 300_000])) for _ in range(200)]
    writer = HashingWriter(open(path, "wb"))  # noqa: SIM115 - closed by the writer
    for chunk in chunks:
        writer.write(chunk)
    writer.write(bytearray(b"a reused buffer"))
    writer.close()
    data = b"".join(chunks) + b"a reused buffer"
    assert path.read_bytes() == data
    assert writer.size == len(data)
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_failing_write_in_the_worker_thread_reaches_the_caller(tmp_path):
    fp = open(tmp_path / "x", "wb")  # noqa: SIM115
    fp.close()  # writing to it raises ValueError in the worker thread
    sha = BackgroundSha256(fp)
    sha.update(b"lost")
    with pytest.raises(ValueError):
        sha.hexdigest()


def test_the_tar_digest_is_the_sha256_of_the_archive_file(tmp_path):
    sources = []
    for index, size in enumerate([0, 1, 512, 3 * 1024 * 1024 + 7]):
        path = tmp_path / f"f{index}"
        path.write_bytes(random.Random(index).randbytes(size))
        sources.append((f"data/f{index}", path, None))
    out = tmp_path / "a.tar"
    sha, size = write_tar(out, sources)
    assert size == out.stat().st_size
    assert sha == hashlib.sha256(out.read_bytes()).hexdigest()


def test_the_tar_is_the_same_where_the_kernel_cannot_copy_files(tmp_path, monkeypatch):
    """Own files go into the archive by os.copy_file_range (Linux); elsewhere (macOS, or a kernel that
    refuses) through a buffer — byte for byte the same archive, with files that need a checked copy."""
    import exports.archive

    sources = []
    for index, size in enumerate([5, 2 * 1024 * 1024 + 3, 0]):
        path = tmp_path / f"f{index}"
        data = random.Random(10 + index).randbytes(size)
        path.write_bytes(data)
        checked = hashlib.sha256(data).hexdigest() if index == 1 else None
        sources.append((f"data/f{index}", path, checked))
    kernel = write_tar(tmp_path / "kernel.tar", sources)
    monkeypatch.setattr(exports.archive, "_copy_file_range", None)
    buffered = write_tar(tmp_path / "buffered.tar", sources)
    assert kernel == buffered
    assert (tmp_path / "kernel.tar").read_bytes() == (tmp_path / "buffered.tar").read_bytes()
    assert kernel[0] == hashlib.sha256((tmp_path / "kernel.tar").read_bytes()).hexdigest()


def test_progress_is_written_at_most_every_interval_but_always_first_and_last(settings, tmp_path):
    from exports.services import progress

    settings.EXPORTS_ROOT = tmp_path
    report = progress.Reporter(7, every=3600)
    report(0, 100)
    assert progress.read(7)["done"] == 0
    report(40, 100)  # within the interval: skipped
    assert progress.read(7)["done"] == 0
    report(100, 100)  # the last one always lands
    assert progress.read(7) == {"done": 100, "total": 100, "percent": 100}
    eager = progress.Reporter(8, every=0)
    eager(1, 100)
    eager(2, 100)
    assert progress.read(8)["done"] == 2


@pytest.mark.parametrize("first_size", [0, 1, 512, 1024 * 1024 + 5])
def test_members_written_in_place_read_back_like_copied_ones(tmp_path, first_size):
    import io
    import tarfile

    first = random.Random(first_size).randbytes(first_size)
    other = tmp_path / "other"
    other.write_bytes(b"the third member")
    out = tmp_path / "a.tar"
    tar = TarBuilder(out)
    with tar.begin_member("a/first") as fp:
        fp.write(first)
    assert tar.end_member() == first_size
    tar.add_bytes("b/small", b"in memory")
    with tar.begin_member("c/empty"):
        pass
    tar.end_member()
    tar.add_file("d/other", other)
    sha, size = tar.finish()
    data = out.read_bytes()
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.getnames() == ["a/first", "b/small", "c/empty", "d/other"]
        assert archive.extractfile("a/first").read() == first
        assert archive.extractfile("b/small").read() == b"in memory"
        assert archive.extractfile("c/empty").read() == b""
        assert archive.extractfile("d/other").read() == b"the third member"
    # The same bytes as a tar of the same files copied in.
    for name, content in (("first", first), ("small", b"in memory"), ("empty", b"")):
        (tmp_path / name).write_bytes(content)
    copied = write_tar(
        tmp_path / "copied.tar",
        [
            ("a/first", tmp_path / "first", None),
            ("b/small", tmp_path / "small", None),
            ("c/empty", tmp_path / "empty", None),
            ("d/other", other, None),
        ],
    )
    assert copied == (sha, size)


def test_nothing_is_added_while_a_member_is_open(tmp_path):
    tar = TarBuilder(tmp_path / "a.tar")
    fp = tar.begin_member("open")
    with pytest.raises(ValueError, match="still open"):
        tar.add_bytes("other", b"x")
    fp.close()
    tar.end_member()
    tar.finish()


@pytest.mark.parametrize("kernel", [True, False])
def test_append_file_continues_a_buffered_file_where_it_stands(tmp_path, monkeypatch, kernel):
    import exports.archive
    from exports.archive import append_file

    if not kernel:
        monkeypatch.setattr(exports.archive, "_copy_file_range", None)
    source = tmp_path / "source"
    data = random.Random(5).randbytes(3 * 1024 * 1024 + 11)
    source.write_bytes(data)
    with open(tmp_path / "out", "w+b", buffering=1 << 20) as out:
        out.write(b"head")  # still in the buffer
        append_file(out, source, len(data) - 7)  # not the last 7 bytes
        out.write(b"tail")
    assert (tmp_path / "out").read_bytes() == b"head" + data[:-7] + b"tail"
