"""Browse and import images in a real Chromium."""

import zipfile

import pytest
from playwright.sync_api import expect

from corpus.models import Image, ImportBatch
from corpus.tasks import import_batch
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory, png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_annotator_filters_images_by_domain_and_opens_one_with_model_text_escaped(
    page, live_server, login, annotator
):
    cats = DomainFactory(name="Cats", slug="cats")
    dogs = DomainFactory(name="Dogs", slug="dogs")
    ImageFactory.create_batch(3, domain=dogs)
    cat = ImageFactory(domain=cats, original_name="tabby.png")
    CaptionFactory(image=cat, text="A tabby cat <script>alert(1)</script> on a sofa.")
    InstructionFactory(image=cat, question="<img src=x onerror=alert(2)> What colour is the cat?")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    login(page, annotator)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Images").click()
    expect(page.locator(".grid .thumb")).to_have_count(4)
    page.select_option("select[name=domain]", "cats")
    expect(page.locator(".grid .thumb")).to_have_count(1)
    assert "domain=cats" in page.url  # htmx pushed the filter into the address bar

    page.get_by_role("link", name="tabby.png").click()
    page.wait_for_url(f"{live_server.url}/images/{cat.pk}/")
    expect(page.locator(".caption-text")).to_contain_text("A tabby cat <script>alert(1)</script> on a sofa.")
    expect(page.locator("table.instructions")).to_contain_text("<img src=x onerror=alert(2)>")
    assert page.locator(".caption-text script").count() == 0
    assert dialogs == []


def test_admin_uploads_several_files_and_sees_the_summary(page, live_server, login, admin_user, tmp_path):
    DomainFactory(name="Uploads", slug="uploads")
    files = []
    for n in range(3):
        path = tmp_path / f"upload-{n}.png"
        path.write_bytes(png_bytes(100 + n))
        files.append(str(path))
    copy = tmp_path / "copy-of-0.png"
    copy.write_bytes(png_bytes(100))
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    files += [str(copy), str(broken)]

    login(page, admin_user)
    page.goto(f"{live_server.url}/images/import/")
    page.set_input_files("input[name=files]", files)
    page.select_option("select[name=domain]", "uploads")
    page.fill("input[name=source]", "browser test")
    page.fill("input[name=license]", "CC0")
    page.get_by_role("button", name="Import").click()

    summary = page.locator("#import-summary")
    expect(summary).to_be_visible()
    expect(summary.locator(".n-imported")).to_have_text("3")
    expect(summary.locator(".n-duplicates")).to_have_text("1")
    expect(summary.locator(".n-rejected")).to_have_text("1")
    expect(summary.locator("tr.rejected")).to_contain_text("not an image Pillow can read")
    assert Image.objects.filter(domain__slug="uploads", source="browser test").count() == 3


def test_annotator_does_not_see_the_import_link_and_gets_403(page, live_server, login, annotator):
    login(page, annotator)
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Import").count() == 0
    response = page.goto(f"{live_server.url}/images/import/")
    assert response.status == 403


def test_zip_upload_runs_in_the_background_and_its_page_updates_by_itself(
    page, live_server, login, admin_user, tmp_path
):
    DomainFactory(name="Zips", slug="zips")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(3):
            zf.writestr(f"p{n}.png", png_bytes(300 + n))
    login(page, admin_user)
    page.goto(f"{live_server.url}/images/import/")
    page.set_input_files("input[name=files]", [str(archive)])
    page.select_option("select[name=domain]", "zips")
    page.get_by_role("button", name="Import").click()
    batch = ImportBatch.objects.get()
    page.wait_for_url(f"{live_server.url}/images/import/{batch.pk}/")
    expect(page.locator("#import-batch")).to_contain_text("Queued")

    import_batch(batch.pk)  # what the worker does; the page polls every 2 s and shows the summary

    expect(page.locator("#import-batch .n-imported")).to_have_text("3", timeout=10_000)
    expect(page.locator("#import-batch")).to_contain_text("Done")
