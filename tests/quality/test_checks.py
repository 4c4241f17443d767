"""The automatic checks (corpus/checks.py): each one fires on what it is for and stays quiet on clean
items; the service stores the findings per item and re-runs them when the item changes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from corpus import checks
from corpus.checks import Check, Item
from corpus.models import Image, ItemStatus, QualityFlag
from corpus.rules import InstructionType as T
from corpus.services import items as item_service
from corpus.services import quality
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory

CAPTION = (
    "A red bus stands at a stop beside two people in grey coats. Behind it a white church tower rises "
    "over the roofs of Oxford. Three pigeons sit on the shelter."
)


class S:  # the settings the pure checks read, at their defaults
    QUALITY_SIMILARITY_THRESHOLD = 90.0
    QUALITY_LENGTH_OUTLIER_RATIO = 3.0


def item(type_=T.SHORT_VQA, question="What vehicle is at the stop?", answer="a bus", options=(), **kw):
    kw.setdefault("caption", CAPTION)
    return Item(kw.pop("id", 1), type_, question, tuple(options), answer, **kw)


def codes(it, median=None):
    return {f.code for f in checks.item_findings(it, median_words=median, settings=S)}


# --- each check, firing and quiet -----------------------------------------------------------------


def test_a_clean_item_of_each_type_is_not_flagged():
    assert codes(item()) == set()
    assert codes(item(T.JUDGEMENT, "Is the bus red?", "Yes")) == set()
    assert codes(item(T.MULTIPLE_CHOICE, "What colour is the bus?", "A", ["red", "blue", "green"])) == set()
    assert (
        codes(item(T.LONG_VQA, "Describe the scene.", "A red bus waits at a stop near a church."), 9) == set()
    )


def test_a_number_colour_or_name_absent_from_the_caption_is_flagged_with_what_it_invented():
    found = checks.not_in_caption(item(answer="7 blue buses"))
    assert found.code == Check.NOT_IN_CAPTION
    assert "the number 7" in found.message and "the colour blue" in found.message
    named = checks.not_in_caption(
        item(T.LONG_VQA, "Where is it?", "The bus stands in Cambridge near a church.")
    )
    assert "“Cambridge”" in named.message
    # What the caption does say passes: digits and number words alike, names, colours.
    assert checks.not_in_caption(item(answer="3 pigeons")) is None
    assert (
        checks.not_in_caption(item(T.LONG_VQA, "Where?", "It is in Oxford, with two people in grey.")) is None
    )
    # A Judgement answered Yes asserts its question; answered No, it does not.
    assert checks.not_in_caption(item(T.JUDGEMENT, "Are there 5 pigeons?", "Yes")) is not None
    assert checks.not_in_caption(item(T.JUDGEMENT, "Are there 5 pigeons?", "No")) is None
    # No caption to compare with: no finding.
    assert checks.not_in_caption(item(answer="7 blue buses", caption="")) is None


def test_an_answer_given_away_by_its_question_is_flagged():
    assert checks.answer_in_question(item(question="What colour is the red bus?", answer="red")).code == (
        Check.ANSWER_IN_QUESTION
    )
    mcq = item(T.MULTIPLE_CHOICE, "Is the bus red or is it something else?", "A", ["red", "blue", "green"])
    assert checks.answer_in_question(mcq) is not None
    # Both options named in the question: a real choice, not a giveaway.
    assert (
        checks.answer_in_question(item(T.MULTIPLE_CHOICE, "Is it red or blue?", "A", ["red", "blue"])) is None
    )
    assert checks.answer_in_question(item(question="What colour is the bus?", answer="red")) is None


def test_mcq_options_that_say_the_same_thing_are_flagged_naming_the_answer():
    found = checks.mcq_options_repeat(
        item(T.MULTIPLE_CHOICE, "Colour?", "A", ["Red car", "red car.", "blue"]), 90
    )
    assert found.code == Check.MCQ_OPTIONS_REPEAT and "answer option A" in found.message
    other = checks.mcq_options_repeat(item(T.MULTIPLE_CHOICE, "Colour?", "C", ["a bus", "bus", "tram"]), 90)
    assert "options A and B" in other.message
    # Different numbers are different options, however alike the words.
    assert (
        checks.mcq_options_repeat(item(T.MULTIPLE_CHOICE, "How many?", "A", ["2 birds", "3 birds"]), 90)
        is None
    )


def test_an_item_not_in_its_prompts_language_is_flagged():
    assert checks.wrong_language(item(language="zh")).code == Check.WRONG_LANGUAGE
    assert (
        checks.wrong_language(item(question="公交车是什么颜色？", answer="红色", language="en")) is not None
    )
    assert checks.wrong_language(item(question="公交车是什么颜色？", answer="红色", language="zh")) is None
    assert checks.wrong_language(item(language="en")) is None
    assert checks.wrong_language(item(language="")) is None  # a person's item: no language to hold it to


def test_a_long_answer_far_shorter_than_its_domains_peers_is_flagged():
    short = item(T.LONG_VQA, "Describe the scene.", "A bus waits here today.")  # 5 words
    assert checks.length_outlier(short, 30.0, 3.0).code == Check.LENGTH_OUTLIER
    assert checks.length_outlier(short, 12.0, 3.0) is None
    assert checks.length_outlier(short, None, 3.0) is None  # too few peers to judge
    assert checks.peers_median(["one two"] * 29, 30) is None
    assert checks.peers_median(["one two three"] * 30, 30) == 3.0


def test_an_all_yes_judgement_set_is_flagged_and_a_mixed_one_is_not():
    yes = [item(T.JUDGEMENT, f"Is there thing {i}?", "Yes", id=i) for i in range(3)]
    found = checks.judgement_unbalanced(yes)
    assert set(found) == {0, 1, 2} and "all 3 Judgement answers of this image are Yes" in found[0].message
    mixed = yes[:2] + [item(T.JUDGEMENT, "Is there a tram?", "No", id=9)]
    assert checks.judgement_unbalanced(mixed) == {}
    assert checks.judgement_unbalanced(yes[:1]) == {}


def test_duplicate_questions_in_an_image_flag_the_later_one():
    first = item(question="What colour is the bus?", id=1)
    again = item(question="what colour is the bus", id=2)
    reworded = item(question="What is the colour of the bus?", id=3)
    other = item(question="How many pigeons sit on the shelter?", id=4)
    found = checks.duplicates_in_image([first, again, reworded, other], 90)
    assert set(found) == {2, 3}
    assert "instruction 1" in found[2].message
    # Same words, a different number: not a duplicate.
    assert (
        checks.duplicates_in_image(
            [item(question="Is bus 1 red?", id=1), item(question="Is bus 2 red?", id=2)], 90
        )
        == {}
    )


def test_the_question_key_ignores_case_punctuation_order_and_filler_words():
    assert checks.question_key("Is the bus red?") == checks.question_key("is there a RED bus")
    assert checks.question_key("Is the bus red?") != checks.question_key("Is the bus blue?")
    assert checks.question_key("图中的公交车是什么颜色？") == checks.question_key("公交车是什么颜色")


# --- stored per item, re-run on every change -------------------------------------------------------


@pytest.fixture
def image(db):
    quality.clear_caches()
    image = ImageFactory(domain=DomainFactory(slug="streets"))
    CaptionFactory(image=image, text=CAPTION)
    return image


def add(image, type_=T.SHORT_VQA, question="What vehicle is at the stop?", answer="a bus", **kw):
    caption = image.captions.first()
    return item_service.create_instruction(
        image, type=type_, question=question, answer=answer, caption=caption, **kw
    )


def flags(instruction):
    return dict(QualityFlag.objects.filter(instruction=instruction).values_list("code", "message"))


def test_flags_are_stored_with_the_item_and_counted_on_its_image(image):
    clean = add(image)
    invented = add(image, question="How many buses are there?", answer="7 buses")
    assert flags(clean) == {}
    assert set(flags(invented)) == {Check.NOT_IN_CAPTION}
    assert QualityFlag.objects.get(instruction=invented).checks_version == checks.CHECKS_VERSION
    image.refresh_from_db()
    assert image.n_flags == 1


def test_an_edit_or_a_reject_re_runs_the_checks_and_an_accept_leaves_them(image, admin_user):
    invented = add(image, question="How many buses are there?", answer="7 buses")
    fixed = item_service.update_item(
        invented, by=admin_user, expected_version=1, changes={"answer": "one bus"}
    )
    assert flags(fixed) == {}
    broken = item_service.update_item(fixed, by=admin_user, expected_version=2, changes={"answer": "9 buses"})
    assert set(flags(broken)) == {Check.NOT_IN_CAPTION}
    # An accept without an edit changes nothing the checks read: the flag stays, and no check runs.
    with CaptureQueriesContext(connection) as accept:
        accepted = item_service.update_item(
            broken, by=admin_user, expected_version=3, status=ItemStatus.ACCEPTED
        )
    assert set(flags(accepted)) == {Check.NOT_IN_CAPTION}
    assert not any("corpus_qualityflag" in q["sql"] for q in accept.captured_queries)
    # A reject takes it out of the checked set: its flags go, and the image's count follows.
    rejected = item_service.update_item(
        accepted, by=admin_user, expected_version=4, status=ItemStatus.REJECTED
    )
    assert flags(rejected) == {}
    assert Image.objects.get(pk=image.pk).n_flags == 0
    # Sent back to draft, it is checked again.
    item_service.update_item(rejected, by=admin_user, expected_version=5, status=ItemStatus.DRAFT)
    assert set(flags(rejected)) == {Check.NOT_IN_CAPTION}
    assert Image.objects.get(pk=image.pk).n_flags == 1


def test_rejecting_one_of_two_duplicates_clears_the_others_flag_on_every_save_path(
    image, annotator, settings
):
    """The review save (review.services.corrections.save_item) takes the one-statement path for a plain
    reject on PostgreSQL and the full path with an edit; both re-run the checks of the image."""
    from review.services.corrections import save_item
    from review.services.queue import take_image

    settings.REVIEW_SECOND_PASS_SHARE = 0
    first = add(image, question="What colour is the bus?", answer="red")
    again = add(image, question="What colour is the bus?", answer="red")
    third = add(image, question="What colour is the bus?", answer="red")
    assert Check.DUPLICATE_IN_IMAGE in flags(again) and Check.DUPLICATE_IN_IMAGE in flags(third)
    take_image(image.pk, annotator)
    save_item("instruction", again.pk, by=annotator, expected_version=1, status=ItemStatus.REJECTED)
    assert flags(again) == {}
    assert Check.DUPLICATE_IN_IMAGE in flags(third)  # still a repeat of the first
    save_item(
        "instruction",
        third.pk,
        by=annotator,
        expected_version=1,
        status=ItemStatus.REJECTED,
        changes={"answer": "a red one"},
    )
    assert flags(third) == {} and Check.DUPLICATE_IN_IMAGE not in flags(first)
    assert Image.objects.get(pk=image.pk).n_flags == sum(len(flags(i)) for i in (first,))


def test_a_judgement_set_gains_and_loses_its_balance_flag_as_its_members_change(image, admin_user):
    a = add(image, T.JUDGEMENT, "Is the bus red?", "Yes")
    b = add(image, T.JUDGEMENT, "Is the tower white?", "Yes")
    assert set(flags(a)) == set(flags(b)) == {Check.JUDGEMENT_UNBALANCED}
    item_service.update_item(
        b, by=admin_user, expected_version=1, changes={"question": "Is the tower blue?", "answer": "No"}
    )
    assert flags(a) == {} and Check.JUDGEMENT_UNBALANCED not in flags(b)


def test_a_question_another_image_of_the_domain_asks_is_flagged_by_key(image):
    other = ImageFactory(domain=image.domain)
    CaptionFactory(image=other, text=CAPTION)
    first = item_service.create_instruction(
        other, type=T.SHORT_VQA, question="What vehicle is at the stop?", answer="a bus"
    )
    assert flags(first) == {}
    second = add(image, question="what vehicle is AT the stop")
    assert f"instruction {first.pk}" in flags(second)[Check.DUPLICATE_IN_DOMAIN]
    # Another domain asking the same is no duplicate of this one.
    elsewhere = ImageFactory(domain=DomainFactory(slug="harbours"))
    third = item_service.create_instruction(
        elsewhere, type=T.SHORT_VQA, question="What vehicle is at the stop?", answer="a bus"
    )
    assert flags(third) == {}


def test_the_domain_lookup_reads_by_the_question_key_index(postgres, image):
    add(image)
    key = checks.question_key("What vehicle is at the stop?")
    with connection.cursor() as cursor:
        cursor.execute(
            "SET enable_seqscan = off"
        )  # a tiny table would be scanned anyway; ask what it can use
        cursor.execute("EXPLAIN SELECT id FROM corpus_instruction WHERE question_key = %s LIMIT 20", [key])
        plan = " ".join(r[0] for r in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "instruction_question_key_idx" in plan


def test_a_write_runs_a_bounded_number_of_queries_for_the_checks(image):
    for i in range(10):
        add(image, question=f"What is thing number {i} near the stop?", answer="a bus")
    with CaptureQueriesContext(connection) as ctx:
        quality.check_image(image.pk, changed=[image.instructions.last().pk])
    assert (
        len(ctx.captured_queries) <= 3
    )  # siblings with their flags, domain candidates (+ a write if needed)


def test_recheck_quality_checks_rows_written_without_the_service_once(image):
    from django.core.management import call_command

    from tests.corpus.factories import InstructionFactory

    caption = image.captions.first()
    loaded = InstructionFactory(image=image, caption=caption, question="How many buses?", answer="7 buses")
    assert flags(loaded) == {}  # written straight to the table: nobody checked it
    call_command("recheck_quality")
    assert set(flags(loaded)) == {Check.NOT_IN_CAPTION}
    assert Image.objects.get(pk=image.pk).n_flags == 1
    assert quality.recheck_quality() == 0  # nothing left to check


def test_the_instruction_api_shows_flags_and_verdicts_in_a_fixed_number_of_queries(
    image, client, researcher, django_assert_max_num_queries
):
    from corpus.models import Verdict

    for n in range(6):
        made = add(image, question=f"How many buses stand at stop {n}?", answer="7 buses")
        Verdict.objects.create(
            instruction=made, item_version=1, verdict="unsupported", category="count", reason="no"
        )
    client.force_login(researcher)
    with django_assert_max_num_queries(8):
        data = client.get("/api/v1/instructions/").json()
    first = data["results"][0]
    assert first["flags"][0]["code"] == Check.NOT_IN_CAPTION
    assert first["verdicts"][0]["verdict"] == "unsupported" and first["verdicts"][0]["category"] == "count"
