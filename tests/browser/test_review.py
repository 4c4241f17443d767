"""The review page in Debian's Chromium: keyboard review of a whole image, conflicts, autosave, escaping."""

import re

import pytest
from playwright.sync_api import expect

from corpus.models import Caption, ImageEvent, ItemStatus
from corpus.rules import InstructionType
from corpus.services.items import create_instruction, update_item
from review.models import HallucinationMark
from review.services.queue import take_image
from tests.corpus.factories import CaptionFactory, DomainFactory
from tests.review.conftest import make_pending_image
from tests.workers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _patient_with_a_loaded_machine(page):
    """CI machines here are shared (load 5–7 on 2 cores seen): wait up to 15 s, not Playwright's 5 s,
    for what must happen, and restore the default for other modules."""
    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


def article(page, item):
    """The item's box, once the page's script and htmx are wired (a native submit would otherwise GET)."""
    expect(page.locator('#review-root[data-ready="true"]')).to_have_count(1)
    kind = "caption" if isinstance(item, Caption) else "instruction"
    return page.locator(f"#item-{kind}-{item.pk}")


def test_review_a_whole_image_with_the_keyboard_then_reload_and_see_it(page, live_server, login, annotator):
    domain = DomainFactory()
    first = make_pending_image(domain, types=(InstructionType.MULTIPLE_CHOICE,))
    second = make_pending_image(domain, types=(InstructionType.SHORT_VQA,))
    caption = first.captions.get()
    mcq = first.instructions.get()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    login(page, annotator)
    page.goto(f"{live_server.url}/review/")
    # Chromium applies autofocus at its next rendering step, which can come after "load" on a
    # busy machine: a key pressed before it goes to the body.
    expect(page.locator("#take-next")).to_be_focused()
    page.keyboard.press("Enter")  # "Take the next image" has the focus
    page.wait_for_url(f"{live_server.url}/review/image/{first.pk}/")

    # The caption is the current item: accept it as it is.
    expect(article(page, caption)).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("a")
    expect(article(page, caption)).to_have_attribute("data-status", "accepted")

    # The MCQ is current now: fix its answer, mark a hallucination on a span of the question, accept.
    expect(article(page, mcq)).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("e")
    answer = article(page, mcq).locator('input[name="answer"]')
    expect(answer).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("C")
    expect(article(page, mcq).locator(".rules")).to_contain_text("Follows the rules")
    question = article(page, mcq).locator('textarea[name="question"]')
    question.focus()
    question.evaluate("el => el.setSelectionRange(0, 4)")
    page.keyboard.press("Alt+1")  # object, on the selected span
    page.keyboard.press("Escape")
    page.keyboard.press("3")  # count, on the answer
    expect(article(page, mcq).locator(".new-mark")).to_have_count(2)
    page.keyboard.press("a")

    # The image is done: the prefetched next image appears without a round trip through the queue.
    page.wait_for_url(f"{live_server.url}/review/image/{second.pk}/")
    expect(page.locator(f"#item-caption-{second.captions.get().pk}")).to_be_visible()

    mcq.refresh_from_db()
    assert (mcq.answer, mcq.status, mcq.version) == ("C", ItemStatus.ACCEPTED, 2)
    marks = {m.category: m for m in HallucinationMark.objects.filter(instruction=mcq)}
    assert marks["object"].span_text == mcq.question[:4] and marks["object"].field == "question"
    assert marks["count"].field == "answer" and marks["object"].revision.version == 2

    page.goto(f"{live_server.url}/review/image/{first.pk}/")
    page.reload()
    expect(article(page, mcq)).to_have_attribute("data-status", "accepted")
    expect(article(page, mcq).locator('input[name="answer"]')).to_have_value("C")
    expect(article(page, mcq).locator(".saved-mark")).to_have_count(2)
    expect(article(page, caption)).to_have_attribute("data-status", "accepted")
    assert dialogs == []


def test_a_stale_save_shows_both_versions_and_keeps_mine_on_request(
    page, live_server, login, annotator, admin_user
):
    image = make_pending_image(DomainFactory(), types=(InstructionType.SHORT_VQA,))
    item = image.instructions.get()
    take_image(image.pk, annotator)  # opening a page never claims: the annotator took it
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    box = article(page, item)
    box.locator('input[name="answer"]').fill("teal")

    # Meanwhile someone else changes the same item.
    update_item(item, by=admin_user, expected_version=1, changes={"answer": "navy"})

    box.locator('input[name="answer"]').focus()
    page.keyboard.press("Control+Enter")
    conflict = box.locator(".conflict")
    expect(conflict).to_be_visible()
    expect(conflict.locator(".mine")).to_contain_text("teal")
    expect(conflict.locator(".theirs")).to_contain_text("navy")
    expect(page.locator("#review-status")).to_contain_text("Conflict")
    item.refresh_from_db()
    assert item.answer == "navy"  # nothing was overwritten

    page.keyboard.press("m")  # keep mine, on top of their version
    expect(box).to_have_attribute("data-version", "3")
    expect(box.locator(".conflict")).to_have_count(0)
    item.refresh_from_db()
    assert (item.answer, item.status, item.version) == ("teal", ItemStatus.ACCEPTED, 3)


def test_unsaved_edits_survive_a_reload(page, live_server, login, annotator):
    image = make_pending_image(DomainFactory(), types=())
    caption = image.captions.get()
    take_image(image.pk, annotator)  # opening a page never claims: the annotator took it
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    article(page, caption).locator("textarea").fill("A picture of three red apples on a table.")
    page.reload()
    expect(article(page, caption).locator("textarea")).to_have_value(
        "A picture of three red apples on a table."
    )
    expect(article(page, caption).locator(".flash")).to_contain_text("Restored your unsaved edits")
    assert Caption.objects.get(pk=caption.pk).version == 1


def test_shortcut_overlay_opens_with_question_mark(page, live_server, login, annotator):
    image = make_pending_image(DomainFactory(), types=())
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    expect(page.locator("#shortcuts")).to_contain_text("mark a hallucination")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()


def test_model_output_with_markup_appears_as_text_and_runs_nothing(page, live_server, login, annotator):
    domain = DomainFactory(guidelines="Look **closely**. <script>window.__pwned = 'guidelines'</script>")
    image = make_pending_image(domain, types=())
    evil = '<script>window.__pwned = "caption"; alert("x")</script><img src=x onerror="window.__pwned=1;alert(1)">'
    Caption.objects.filter(image=image).update(text=evil)
    CaptionFactory(image=image, text="plain")
    item = create_instruction(
        image,
        type=InstructionType.SHORT_VQA,
        question='What does <img src=x onerror="alert(2)"> show?',
        answer="<b>bold</b>",
    )
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    expect(page.locator("textarea").first).to_have_value(evil)
    expect(article(page, item).locator('textarea[name="question"]')).to_have_value(
        'What does <img src=x onerror="alert(2)"> show?'
    )
    expect(page.locator(".guidelines-body strong")).to_have_text("closely")
    page.goto(f"{live_server.url}/review/item/instruction/{item.pk}/history/")
    expect(page.locator(".history")).to_contain_text("<b>bold</b>")
    # Every request of the page has ended (an <img onerror> fires when its load fails), so any dialog has too.
    page.wait_for_load_state("networkidle")
    assert dialogs == []
    assert page.evaluate("window.__pwned") is None


def test_the_prefetched_image_is_leased_ahead_and_released_when_the_page_is_left(
    page, live_server, login, annotator
):
    from corpus.models import Image, ReviewStatus

    domain = DomainFactory()
    current = make_pending_image(domain, types=())  # one draft left: the page prefetches at once
    following = make_pending_image(domain, types=())
    take_image(current.pk, annotator)  # opening a page never claims: the annotator took it
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{current.pk}/")
    wait_for(
        lambda: Image.objects.filter(
            pk=following.pk, review_status=ReviewStatus.IN_REVIEW, leased_by=annotator
        ).exists(),
        10,
        "the next image to be prefetched",
    )
    expect(page.locator(f'#review-root[data-prefetched="{following.pk}"]')).to_have_count(1)
    page.goto(f"{live_server.url}/review/")  # leaving the page gives the prefetched image back
    wait_for(
        lambda: Image.objects.get(pk=following.pk).review_status == ReviewStatus.PENDING,
        10,
        "the prefetched image to be given back",
    )
    assert Image.objects.get(pk=current.pk).leased_by == annotator  # the one being reviewed stays held


def test_an_image_someone_else_holds_is_read_only(page, live_server, login, annotator, second_annotator):
    from review.services.queue import claim_next_image

    image = make_pending_image(DomainFactory(), types=())
    claim_next_image(second_annotator)
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    expect(page.locator(".notice")).to_contain_text("bob-annotator is reviewing this image now")
    expect(page.locator("article.item textarea").first).to_be_disabled()
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.keyboard.press("a")
    page.keyboard.press("?")  # keys are handled in order: once the overlay shows, "a" has been handled
    expect(page.locator("#shortcuts")).to_be_visible()
    assert posts == []
    assert image.captions.get().status == ItemStatus.DRAFT


def test_reject_with_a_reason_from_the_keyboard(page, live_server, login, annotator):
    image = make_pending_image(DomainFactory(), types=(InstructionType.SHORT_VQA,))
    caption, item = image.captions.get(), image.instructions.get()
    take_image(image.pk, annotator)  # opening a page never claims: the annotator took it
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    page.keyboard.press("j")  # from the caption to the instruction
    expect(article(page, item)).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("r")
    expect(article(page, item).locator("input.reason")).to_be_focused()
    page.keyboard.type("the corner is red, not green")
    page.keyboard.press("Enter")
    expect(article(page, item)).to_have_attribute("data-status", "rejected")
    expect(article(page, item)).to_contain_text("Rejected: the corner is red, not green")
    item.refresh_from_db()
    assert (item.status, item.reason) == (ItemStatus.REJECTED, "the corner is red, not green")
    # The caption is still to decide, and is current again.
    expect(article(page, caption)).to_have_class(re.compile(r"\bcurrent\b"))


def test_the_open_page_keeps_renewing_its_lease(page, live_server, login, annotator, settings):
    from datetime import timedelta

    from django.utils import timezone

    from corpus.models import Image

    settings.REVIEW_HEARTBEAT_SECONDS = 1
    image = make_pending_image(DomainFactory(), types=())
    take_image(image.pk, annotator)  # opening a page never claims: the annotator took it
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    expect(page.locator("article.item").first).to_be_visible()
    soon = timezone.now() + timedelta(seconds=5)
    Image.objects.filter(pk=image.pk).update(lease_expires_at=soon)
    wait_for(
        lambda: Image.objects.get(pk=image.pk).lease_expires_at > timezone.now() + timedelta(minutes=10),
        10,
        "the heartbeat to renew the lease",
    )


def test_add_a_missing_instruction_from_the_page(page, live_server, login, annotator):
    image = make_pending_image(DomainFactory(), types=(InstructionType.SHORT_VQA,))
    take_image(image.pk, annotator)  # opening a page never claims: the annotator took it
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    page.keyboard.press("i")
    form = page.locator(".add-instruction form")
    expect(form.locator("select")).to_be_focused()
    form.locator("select").select_option("judgement")
    form.locator("textarea[name=question]").fill("Is there a <b>cat</b> in the picture?")
    form.locator("input[name=answer]").fill("maybe")
    form.locator("button[type=submit]").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".add-result")).to_contain_text("Yes or No")
    form.locator("input[name=answer]").fill("no")
    form.locator("button[type=submit]").focus()
    page.keyboard.press("Enter")
    group = page.locator('.type-group[data-type="judgement"]')
    expect(group.locator("article.item")).to_have_count(1)
    expect(group.locator("article.item")).to_have_attribute("data-status", "accepted")
    expect(group.locator("textarea[name=question]")).to_have_value("Is there a <b>cat</b> in the picture?")
    added = image.instructions.get(type=InstructionType.JUDGEMENT)
    assert (added.origin, added.answer, added.created_by) == ("person", "No", annotator)


def test_opening_an_image_is_read_only_until_review_this_image_is_pressed(
    page, live_server, login, annotator
):
    from corpus.models import Image, ReviewStatus

    image = make_pending_image(DomainFactory(), types=())
    caption = image.captions.get()
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    expect(page.locator(".notice")).to_contain_text("This image waits for review.")
    expect(article(page, caption).locator("textarea")).to_be_disabled()
    page.keyboard.press("a")  # nothing to decide on an image one does not hold
    assert Image.objects.get(pk=image.pk).review_status == ReviewStatus.PENDING
    assert not ImageEvent.objects.exists()

    page.get_by_role("button", name="Review this image").click()
    page.wait_for_url(f"{live_server.url}/review/image/{image.pk}/")
    expect(page.locator(".notice")).to_have_count(0)
    expect(article(page, caption).locator("textarea")).to_be_enabled()
    assert Image.objects.get(pk=image.pk).leased_by == annotator
    page.keyboard.press("a")
    # The caption was the image's last draft: once saved, the page moves on to the next image at once, so
    # the saved state is read where it is kept (the item's article may already be gone).
    wait_for(lambda: Caption.objects.get(pk=caption.pk).status == ItemStatus.ACCEPTED, 15, "the accept")
    assert Image.objects.get(pk=image.pk).review_status == ReviewStatus.REVIEWED
    page.wait_for_url(
        f"{live_server.url}/review/"
    )  # nothing else waits: the queue page, no request in flight


def test_reopen_a_reviewed_image_from_its_page(page, live_server, login, annotator, settings):
    from corpus.models import Image, ReviewStatus
    from review.services.corrections import save_item

    settings.REVIEW_SECOND_PASS_SHARE = 0
    image = make_pending_image(DomainFactory(), types=())
    caption = image.captions.get()
    take_image(image.pk, annotator)
    save_item("caption", caption.pk, by=annotator, expected_version=1, status=ItemStatus.ACCEPTED)
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    expect(page.locator(".notice")).to_contain_text("This image is reviewed.")
    assert Image.objects.get(pk=image.pk).review_status == ReviewStatus.REVIEWED
    page.get_by_role("button", name="Reopen").click()
    expect(article(page, caption).locator("textarea")).to_be_enabled()
    image.refresh_from_db()
    assert (image.review_status, image.leased_by) == (ReviewStatus.IN_REVIEW, annotator)
    assert ImageEvent.objects.filter(image=image, note="reopened", actor=annotator).count() == 1


def _refuse_caption_writes(kind: str) -> None:
    """Make the database refuse every write to captions, for real: a trigger. `busy` fails as a lock
    timeout does (the server answers 503 with its message), `broken` with another error (a 500)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            code = "lock_not_available" if kind == "busy" else "raise_exception"
            cursor.execute(
                "CREATE OR REPLACE FUNCTION mmi_test_refuse() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION 'refused for a test' USING ERRCODE = '{code}'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute("DROP TRIGGER IF EXISTS mmi_test_refuse ON corpus_caption")
            cursor.execute(
                "CREATE TRIGGER mmi_test_refuse BEFORE UPDATE ON corpus_caption "
                "FOR EACH ROW EXECUTE FUNCTION mmi_test_refuse()"
            )
        else:
            cursor.execute("DROP TRIGGER IF EXISTS mmi_test_refuse")
            cursor.execute(
                "CREATE TRIGGER mmi_test_refuse BEFORE UPDATE ON corpus_caption "
                "BEGIN SELECT RAISE(ABORT, 'refused for a test'); END"
            )


def _allow_caption_writes() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER IF EXISTS mmi_test_refuse ON corpus_caption")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS mmi_test_refuse")


def test_a_save_the_database_refuses_shows_why_and_retry_saves_it(page, live_server, login, annotator):
    from django.db import connection

    # A second draft keeps the image open after the caption is saved (no move to the next image).
    image = make_pending_image(DomainFactory(), types=(InstructionType.SHORT_VQA,))
    caption = image.captions.get()
    take_image(image.pk, annotator)
    login(page, annotator)
    page.goto(f"{live_server.url}/review/image/{image.pk}/")
    box = article(page, caption)
    box.locator("textarea").fill("Three red apples on a wooden table.")
    try:
        busy = connection.vendor == "postgresql"  # SQLite's trigger can only fail as a 500
        _refuse_caption_writes("busy" if busy else "broken")
        box.locator("textarea").focus()
        page.keyboard.press("Control+Enter")
        failure = box.locator(".flash .failure")
        expect(failure).to_be_visible()
        expect(failure).to_contain_text(
            "The database did not answer (busy or unavailable); nothing was saved." if busy else "HTTP 500"
        )
        expect(page.locator("#review-status")).to_contain_text("Retry")
        expect(box.locator("textarea")).to_have_value("Three red apples on a wooden table.")  # kept
        assert Caption.objects.get(pk=caption.pk).version == 1

        if busy:  # now a failure of another kind: the message says so, the retry stays
            _refuse_caption_writes("broken")
            failure.get_by_role("button", name="Retry").click()
            expect(box.locator(".flash .failure")).to_contain_text("the server failed (HTTP 500)")
            assert Caption.objects.get(pk=caption.pk).version == 1

        _allow_caption_writes()
        box.locator(".flash .failure").get_by_role("button", name="Retry").click()
        expect(box).to_have_attribute("data-status", "accepted")
        expect(box.locator(".flash")).to_contain_text("Saved (v2)")
    finally:
        _allow_caption_writes()
    saved = Caption.objects.get(pk=caption.pk)
    assert (saved.text, saved.status, saved.version) == ("Three red apples on a wooden table.", "accepted", 2)
