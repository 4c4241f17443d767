"""Every bad input to the review app is a clear 400 naming the field (JSON on the API, a message on the
pages), never a 500, and writes nothing."""

import json

import pytest
from django.urls import reverse

from corpus.models import Caption, ImageEvent, ItemStatus, Revision
from corpus.rules import InstructionType
from review.models import HallucinationMark, SecondVerdict
from review.services.queue import claim_next_image
from tests.conftest import field_errors
from tests.review.conftest import make_pending_image
from tests.review.test_api import save_url

pytestmark = pytest.mark.django_db

HUGE = 2**64 + 1  # beyond every integer column


@pytest.fixture
def held(client, annotator, pending_image):
    """The annotator holds the pending image and is logged in."""
    claim_next_image(annotator)
    client.force_login(annotator)
    client.raise_request_exception = False  # a 500 must show as a 500 here, not as an exception
    return pending_image


def nothing_written(image):
    caption = image.captions.get()
    return (
        caption.version == 1
        and not Revision.objects.exists()
        and not HallucinationMark.objects.exists()
        and all(i.version == 1 for i in image.instructions.all())
    )


def post_json(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"text": {"a": 1}}, "text"),
        ({"text": 42}, "text"),
        ({"text": ["a", "list"]}, "text"),
        ({"text": None}, "text"),
        ({"text": "a cat\x00 on a mat"}, "text"),
        ({"text": "an escape \x1b[31m sequence"}, "text"),
        ({"text": "a C1 control \x85 character"}, "text"),
    ],
)
def test_a_caption_save_with_a_value_that_is_no_usable_text_is_400_naming_it(client, held, changes, field):
    caption = held.captions.get()
    response = post_json(client, save_url("caption", caption.pk), {"expected_version": 1, "changes": changes})
    assert response.status_code == 400, response.content
    messages = field_errors(response)["changes"]
    assert any(m.startswith(f"{field}: ") for m in messages), messages
    assert nothing_written(held)


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"question": 7}, "question"),
        ({"answer": {"letter": "B"}}, "answer"),
        ({"type": 3}, "type"),
        ({"options": "red, green"}, "options"),
        ({"options": ["red", 2]}, "options"),
        ({"question": "What colour\x00 is the corner?"}, "question"),
        ({"options": ["red", "gre\x07en", "blue", "black"]}, "options"),
    ],
)
def test_an_instruction_save_with_a_value_that_is_no_usable_text_is_400_naming_it(
    client, held, changes, field
):
    item = held.instructions.get(type=InstructionType.MULTIPLE_CHOICE)
    response = post_json(
        client,
        save_url("instruction", item.pk),
        {"expected_version": 1, "status": "accepted", "changes": changes},
    )
    assert response.status_code == 400, response.content
    messages = field_errors(response)["changes"]
    assert any(m.startswith(f"{field}") for m in messages), messages
    assert nothing_written(held)


def test_tab_line_feed_and_carriage_return_are_text(client, held):
    caption = held.captions.get()
    text = "Two lines,\r\nthe second\tindented."
    response = post_json(
        client, save_url("caption", caption.pk), {"expected_version": 1, "changes": {"text": text}}
    )
    assert response.status_code == 200, response.content
    caption.refresh_from_db()
    assert caption.text == text


def test_unknown_keys_in_changes_are_refused_by_name_and_nothing_is_written(client, held):
    caption = held.captions.get()
    response = post_json(
        client,
        save_url("caption", caption.pk),
        {"expected_version": 1, "changes": {"text": "Fine text.", "colour": "red", "status": "accepted"}},
    )
    assert response.status_code == 400
    messages = field_errors(response)["changes"]
    assert any("'colour'" in m for m in messages) and any("'status'" in m for m in messages), messages
    assert nothing_written(held)


def test_the_service_refuses_unknown_fields_too(annotator, held):
    from corpus.rules import InstructionRuleError
    from review.services.corrections import save_item

    caption = held.captions.get()
    with pytest.raises(InstructionRuleError, match="colour: a caption has no such field"):
        save_item("caption", caption.pk, by=annotator, expected_version=1, changes={"colour": "red"})
    assert nothing_written(held)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"expected_version": HUGE}, "expected_version"),
        ({"expected_version": "one"}, "expected_version"),
        ({"expected_version": 1, "reason": "no\x00pe", "status": "rejected"}, "reason"),
        ({"expected_version": 1, "note": 5}, "note"),
        ({"expected_version": 1, "changes": "text"}, "changes"),
        (
            {
                "expected_version": 1,
                "hallucinations": [{"category": "object", "span_start": HUGE, "span_end": HUGE}],
            },
            "hallucinations",
        ),
        (
            {"expected_version": 1, "hallucinations": [{"category": "object", "note": "x\x00"}]},
            "hallucinations",
        ),
        ({"expected_version": 1, "hallucinations": [{"category": "unicorn"}]}, "hallucinations"),
    ],
)
def test_other_bad_save_fields_are_400_naming_the_field(client, held, body, field):
    caption = held.captions.get()
    response = post_json(client, save_url("caption", caption.pk), body)
    assert response.status_code == 400, response.content
    assert field in field_errors(response)
    assert nothing_written(held)


def test_deeply_nested_json_is_a_400_not_a_recursion_error(client, held):
    caption = held.captions.get()
    deep = "[" * 100_000 + "]" * 100_000
    for url in (save_url("caption", caption.pk), "/api/v1/review/images/next/"):
        response = client.post(url, deep, content_type="application/json")
        assert response.status_code == 400, (url, response.content[:200])
        assert "nested more than" in response.json()["detail"]
    nested = {"expected_version": 1, "changes": {"text": {"a": {"b": {"c": [[[[["deep"]]]]]}}}}}
    assert post_json(client, save_url("caption", caption.pk), nested).status_code == 400
    assert nothing_written(held)


def test_next_with_domains_beyond_64_bits_is_400(client, held):
    for domains in ([HUGE], [2**63], ["x"], [0], "1,2"):
        response = post_json(client, "/api/v1/review/images/next/", {"domains": domains})
        assert response.status_code == 400, (domains, response.content)
        assert "domains" in field_errors(response)


def test_ids_beyond_64_bits_in_urls_are_404(client, held):
    for url in (
        f"/api/v1/review/images/{HUGE}/renew/",
        f"/api/v1/review/images/{HUGE}/take/",
        f"/api/v1/review/captions/{HUGE}/save/",
        "/api/v1/review/images/%C2%B2/renew/",  # a digit, but not an ASCII one
    ):
        assert client.post(url, {}, content_type="application/json").status_code == 404, url
    assert client.get(f"/api/v1/review/images/{HUGE}/").status_code == 404
    assert client.get(f"/review/image/{HUGE}/").status_code == 404


# --- pages ----------------------------------------------------------------------------------------------


def test_next_with_a_current_image_that_does_not_exist_says_so(client, held):
    before = list(ImageEvent.objects.values_list("id", flat=True))
    for current in ("999999", str(HUGE), "²", "abc"):
        response = client.post(reverse("review:next"), {"current": current})
        assert response.status_code == 400, current
        assert "current: there is no image" in response.content.decode()
    assert list(ImageEvent.objects.values_list("id", flat=True)) == before


def test_queue_domains_that_are_no_ids_are_refused(client, held):
    for value in (str(HUGE), "²", "-1"):
        response = client.post(reverse("review:queue"), {"domains": [value]})
        assert response.status_code == 400 and "domains:" in response.content.decode()


def test_a_nul_in_a_question_is_refused_everywhere_a_person_types_one(client, held):
    question = "What colour\x00 is the corner?"
    validate = client.post(
        reverse("review:validate"),
        {"type": "short_vqa", "question": question, "answer": "red"},
        HTTP_ACCEPT="application/json",
    )
    assert validate.json()["valid"] is False
    assert validate.json()["violations"] == [
        "question: contains the control character U+0000; only tab, line feed and carriage return are allowed"
    ]
    # A control character the cleaning would strip is still refused as typed: validate agrees with save.
    trailing = client.post(
        reverse("review:validate"),
        {"type": "short_vqa", "question": "What colour?\x1f", "answer": "red"},
        HTTP_ACCEPT="application/json",
    )
    assert trailing.json()["valid"] is False
    item = held.instructions.get(type=InstructionType.SHORT_VQA)
    save = client.post(
        reverse("review:save", args=["instruction", item.pk]),
        {"expected_version": 1, "action": "accept", "type": item.type, "question": question, "answer": "red"},
    )
    assert save.status_code == 400 and "U+0000" in save.content.decode()
    add = client.post(
        reverse("review:add_instruction", args=[held.pk]),
        {"type": "short_vqa", "question": question, "answer": "red"},
    )
    assert add.status_code == 400 and "U+0000" in add.content.decode()
    reject = client.post(
        reverse("review:save", args=["instruction", item.pk]),
        {
            "expected_version": 1,
            "action": "reject",
            "type": item.type,
            "question": item.question,
            "answer": item.answer,
            "reason": "wrong\x00colour",
        },
    )
    assert reject.status_code == 400 and "reason: contains the control character" in reject.content.decode()
    assert nothing_written(held) and held.instructions.count() == 2


def test_a_caption_with_a_control_character_is_refused_on_the_page(client, held):
    caption = held.captions.get()
    response = client.post(
        reverse("review:save", args=["caption", caption.pk]),
        {"expected_version": 1, "action": "accept", "text": "A bell\x07 rings."},
    )
    assert (
        response.status_code == 400
        and "text: contains the control character U+0007" in response.content.decode()
    )
    assert "A bell\x07 rings." not in Caption.objects.get(pk=caption.pk).text
    assert nothing_written(held)


def test_form_numbers_that_are_no_numbers_are_refused_not_500(client, held):
    caption = held.captions.get()
    url = reverse("review:save", args=["caption", caption.pk])
    for version in ("²", str(HUGE), str(2**31), "-1", "1.0"):
        response = client.post(url, {"expected_version": version, "action": "accept", "text": "x"})
        assert response.status_code == 400, version
    marked = client.post(
        url,
        {
            "expected_version": 1,
            "action": "save",
            "text": caption.text,
            "mark_category": ["object"],
            "mark_field": ["text"],
            "mark_start": [str(HUGE)],
            "mark_end": [str(HUGE + 1)],
        },
    )
    assert marked.status_code == 400 and "outside the text" in marked.content.decode()
    assert nothing_written(held)


def test_a_second_pass_note_with_a_control_character_is_refused(
    client, settings, annotator, second_annotator, domain
):
    from review.services import second_pass
    from review.services.corrections import save_item

    settings.REVIEW_SECOND_PASS_SHARE = 1.0
    image = make_pending_image(domain, types=())
    claim_next_image(annotator)
    save_item(
        "caption", image.captions.get().pk, by=annotator, expected_version=1, status=ItemStatus.ACCEPTED
    )
    second = second_pass.claim_second_pass(second_annotator)
    client.force_login(second_annotator)
    caption = image.captions.get()
    response = client.post(
        reverse("review:second_pass_image", args=[second.pk]),
        {f"verdict-caption-{caption.pk}": "disagree", f"note-caption-{caption.pk}": "a dog\x00"},
    )
    assert response.status_code == 400 and "note: contains the control character" in response.content.decode()
    assert not SecondVerdict.objects.exists()


# --- the history's schema -----------------------------------------------------------------------------


def test_history_by_is_null_for_the_systems_revisions_and_the_schema_says_so(
    client, researcher, pending_image
):
    from drf_spectacular.generators import SchemaGenerator

    from corpus.services.items import create_caption

    caption = create_caption(pending_image, text="A model draft.")  # by nobody
    client.force_login(researcher)
    body = client.get(f"/api/v1/review/captions/{caption.pk}/history/").json()
    assert body["results"][0]["by"] is None
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert schema["components"]["schemas"]["Revision"]["properties"]["by"]["nullable"] is True
