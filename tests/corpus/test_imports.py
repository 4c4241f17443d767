"""Image import through its public surfaces: the import service and the import_images command."""

import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from PIL import Image as PILImage
from PIL import ImageDraw

from corpus.models import Image
from corpus.services.imports import import_images, sources_from_paths, sources_from_uploads
from corpus.services.near_duplicates import NearDuplicateIndex
from tests.corpus.factories import DomainFactory, png_bytes

pytestmark = pytest.mark.django_db


def picture(seed: int = 0, size=(240, 180)) -> PILImage.Image:
    """A picture with structure (shapes), so that its perceptual hash means something."""
    img = PILImage.new("RGB", size, (240, 240, 230))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w * 0.1, h * 0.2, w * 0.45, h * 0.8), fill=(200, 40 + seed * 20, 40))
    draw.rectangle((w * 0.55, h * 0.1, w * 0.9, h * 0.5 + seed * 5), fill=(30, 60, 160))
    draw.line((0, h - 1, w, seed * 10), fill=(0, 0, 0), width=6)
    return img


def save(img: PILImage.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


@pytest.fixture
def messy_folder(tmp_path) -> Path:
    """Good images, a truncated JPEG, a text file named .png, a 20000×20000 PNG, two copies of one image."""
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    (folder / "good1.png").write_bytes(png_bytes(1))
    (folder / "sub" / "good2.png").write_bytes(png_bytes(2))
    jpeg = io.BytesIO()
    picture(1).save(jpeg, format="JPEG", quality=90)
    (folder / "photo.jpg").write_bytes(jpeg.getvalue())
    (folder / "sub" / "photo-copy.jpg").write_bytes(jpeg.getvalue())
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "notes.png").write_text("this is a text file, not a picture\n")
    # 1-bit PNG: 400 million pixels in ~50 KB, a decompression bomb.
    PILImage.new("1", (20000, 20000)).save(folder / "huge.png")
    return folder


def test_messy_folder_imports_good_images_once_and_reports_each_bad_file(messy_folder):
    domain = DomainFactory()
    summary = import_images(sources_from_paths([messy_folder]), domain=domain, source="test", license="CC0")

    imported = sorted(Path(r.name).name for r in summary.imported)
    assert imported == ["good1.png", "good2.png", "photo.jpg"]
    assert [Path(r.name).name for r in summary.duplicates] == ["photo-copy.jpg"]
    assert summary.duplicates[0].duplicate_of == Image.objects.get(original_name="photo.jpg").pk
    reasons = {Path(r.name).name: r.reason for r in summary.rejected}
    assert set(reasons) == {"truncated.jpg", "notes.png", "huge.png"}
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["notes.png"]
    assert "decompression bomb" in reasons["huge.png"]
    assert Image.objects.filter(domain=domain).count() == 3


def test_imported_image_has_metadata_file_and_jpeg_thumbnail(tmp_path):
    path = save(picture(2, size=(600, 300)), tmp_path / "wide.png")
    domain = DomainFactory()
    summary = import_images(sources_from_paths([path]), domain=domain, source="camera roll", license="CC-BY")
    image = Image.objects.get(pk=summary.imported[0].image_id)
    assert (image.width, image.height, image.format) == (600, 300, "PNG")
    assert image.source == "camera roll" and image.license == "CC-BY"
    assert len(image.sha256) == 64 and len(image.phash) == 16
    assert image.file.name.endswith(f"{image.sha256}.png")
    with PILImage.open(image.thumbnail.path) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) == 256


def test_images_above_the_configured_pixel_limit_are_refused_from_the_header(settings, tmp_path):
    settings.IMAGE_MAX_PIXELS = 100 * 100
    path = save(picture(0, size=(200, 200)), tmp_path / "big.png")
    summary = import_images(sources_from_paths([path]), domain=DomainFactory())
    assert summary.imported == []
    assert "40,000 pixels" in summary.rejected[0].reason and "IMAGE_MAX_PIXELS" in summary.rejected[0].reason


def test_reimporting_the_same_folder_reports_duplicates_and_stores_nothing_new(messy_folder):
    domain = DomainFactory()
    import_images(sources_from_paths([messy_folder]), domain=domain)
    again = import_images(sources_from_paths([messy_folder]), domain=domain)
    assert again.imported == []
    assert len(again.duplicates) == 4
    assert Image.objects.count() == 3


def test_zip_archive_members_are_imported_one_by_one(tmp_path):
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.png", png_bytes(10))
        zf.writestr("folder/b.png", png_bytes(11))
        zf.writestr("folder/broken.png", b"\x89PNG\r\n\x1a\n not really")
        zf.writestr("__MACOSX/._a.png", b"resource fork")
    summary = import_images(sources_from_paths([archive]), domain=DomainFactory())
    assert sorted(r.name for r in summary.imported) == [f"{archive}:a.png", f"{archive}:folder/b.png"]
    assert [r.name for r in summary.rejected] == [f"{archive}:folder/broken.png"]
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["a.png", "b.png"]


def test_a_file_that_is_not_a_zip_but_named_zip_is_reported(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_text("nope")
    summary = import_images(sources_from_paths([fake]), domain=DomainFactory())
    assert summary.files_read == 0
    assert "zip archive" in summary.unreadable[0].reason


def test_resized_and_reencoded_copy_is_imported_and_flagged_as_near_duplicate(tmp_path):
    domain = DomainFactory()
    original = save(picture(3, size=(480, 360)), tmp_path / "original.png")
    first = import_images(sources_from_paths([original]), domain=domain)
    copy = save(picture(3, size=(480, 360)).resize((320, 240)), tmp_path / "smaller.jpg", quality=70)
    other = save(picture(0, size=(480, 360)).rotate(90), tmp_path / "other.png")
    second = import_images(sources_from_paths([copy, other]), domain=domain)

    flagged = {Path(r.name).name: r.near_duplicate_of for r in second.imported}
    assert flagged["smaller.jpg"] == first.imported[0].image_id
    assert flagged["other.png"] is None
    assert [Path(r.name).name for r in second.near_duplicates] == ["smaller.jpg"]
    assert Image.objects.get(original_name="smaller.jpg").near_duplicate_of_id == first.imported[0].image_id


def test_near_duplicates_are_looked_for_in_the_same_domain_only(tmp_path):
    original = save(picture(4, size=(480, 360)), tmp_path / "original.png")
    import_images(sources_from_paths([original]), domain=DomainFactory())
    copy = save(picture(4, size=(480, 360)), tmp_path / "copy.jpg", quality=80)
    summary = import_images(sources_from_paths([copy]), domain=DomainFactory())
    assert summary.near_duplicates == []


def test_near_duplicate_index_finds_every_hash_within_the_distance_and_none_beyond():
    index = NearDuplicateIndex(max_distance=4)
    base = 0x0123_4567_89AB_CDEF
    index.add(1, f"{base:016x}")
    for bits in ([0], [63], [0, 13, 26, 39], [5, 6, 7, 8], [60, 61, 62, 63]):
        flipped = base
        for b in bits:
            flipped ^= 1 << b
        assert index.nearest(f"{flipped:016x}") == 1, bits
    five_apart = base ^ 0b11111
    assert index.nearest(f"{five_apart:016x}") is None


def test_uploaded_files_and_zip_uploads_go_through_the_same_import():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inside.png", png_bytes(21))
    uploads = [
        SimpleUploadedFile("one.png", png_bytes(20), content_type="image/png"),
        SimpleUploadedFile("pack.zip", buf.getvalue(), content_type="application/zip"),
        SimpleUploadedFile("evil.png", b"<script>alert(1)</script>", content_type="image/png"),
    ]
    summary = import_images(sources_from_uploads(uploads), domain=DomainFactory())
    assert sorted(r.name for r in summary.imported) == ["one.png", "pack.zip:inside.png"]
    assert [r.name for r in summary.rejected] == ["evil.png"]


def test_command_prints_the_summary_with_each_bad_file(messy_folder, capsys):
    domain = DomainFactory(slug="ocr-test")
    call_command(
        "import_images", str(messy_folder), "--domain", "ocr-test", "--source", "scan", "--no-progress"
    )
    out = capsys.readouterr().out
    assert "imported: 3" in out
    assert "duplicates skipped: 1" in out
    assert "rejected: 3" in out
    for name in ("truncated.jpg", "notes.png", "huge.png", "photo-copy.jpg"):
        assert name in out
    assert set(Image.objects.values_list("source", flat=True)) == {"scan"}
    assert Image.objects.filter(domain=domain).count() == 3


def test_command_refuses_an_unknown_domain_with_the_known_ones(tmp_path):
    DomainFactory(slug="real-domain")
    with pytest.raises(CommandError, match="unknown domain 'nope'.*real-domain"):
        call_command("import_images", str(tmp_path), "--domain", "nope")


def test_command_fails_when_nothing_could_be_read(tmp_path):
    DomainFactory(slug="d")
    with pytest.raises(CommandError, match="nothing could be read"):
        call_command("import_images", str(tmp_path / "missing"), "--domain", "d", "--no-progress")


def test_command_succeeds_when_some_files_are_bad(tmp_path, capsys):
    DomainFactory(slug="d")
    (tmp_path / "bad.png").write_text("x")
    call_command("import_images", str(tmp_path), "--domain", "d", "--no-progress")
    assert "rejected: 1" in capsys.readouterr().out


def test_multi_picture_jpeg_from_a_phone_is_imported_as_jpeg(tmp_path):
    first = picture(5)
    path = tmp_path / "phone.jpg"
    first.save(path, format="MPO", save_all=True, append_images=[picture(6)])
    with PILImage.open(path) as probe:
        assert probe.format == "MPO"
    summary = import_images(sources_from_paths([path]), domain=DomainFactory())
    image = Image.objects.get(pk=summary.imported[0].image_id)
    assert image.format == "JPEG" and image.file.name.endswith(".jpeg")


def test_palette_png_with_transparency_gets_a_thumbnail(tmp_path):
    img = picture(7).convert("P")
    img.info["transparency"] = 0
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)
    summary = import_images(sources_from_paths([path]), domain=DomainFactory())
    assert len(summary.imported) == 1
    with PILImage.open(Image.objects.get().thumbnail.path) as thumb:
        assert thumb.mode == "RGB"
