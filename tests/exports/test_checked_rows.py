"""The export trusts the rules' verdict that corpus.services recorded when it wrote an instruction —
exactly as long as the content is what passed (the database recomputes content_digest on every write,
whoever writes) and the rules are the same version; anything else is checked again and skipped if
invalid."""

import json

import pytest
from django.db.models import F

from corpus.models import Instruction, ItemStatus
from corpus.rules import RULES_VERSION
from corpus.services.items import create_instruction, update_item

from .conftest import build, read_member

pytestmark = pytest.mark.django_db

TOO_LONG = "far too many words for a short answer to a short question here"  # breaks short_vqa


def exported_ids(version) -> set[int]:
    return {row[0] for row in json.loads(read_member(version, "manifest.json"))["instructions"]}


def accepted_short(image, answer="a red car"):
    made = create_instruction(
        image, type="short_vqa", question="What is parked?", answer=answer, status=ItemStatus.ACCEPTED
    )
    made.refresh_from_db()
    return made


def test_a_row_written_through_the_services_carries_the_check_of_its_content(corpus):
    made = accepted_short(corpus["images"][0])
    assert (made.checked_rules, made.checked_digest) == (RULES_VERSION, made.content_digest)
    assert len(made.content_digest) == 32
    edited = update_item(made, by=None, expected_version=made.version, changes={"answer": "a blue car"})
    edited.refresh_from_db()
    assert edited.content_digest != made.content_digest
    assert (edited.checked_rules, edited.checked_digest) == (RULES_VERSION, edited.content_digest)
    invalid = create_instruction(corpus["images"][0], type="short_vqa", question="What?", answer=TOO_LONG)
    invalid.refresh_from_db()
    assert invalid.status == ItemStatus.INVALID
    assert invalid.checked_digest == "" and invalid.checked_rules is None


def test_content_changed_outside_the_services_is_checked_again_and_skipped(corpus, make_spec):
    made = accepted_short(corpus["images"][0])
    assert made.pk in exported_ids(build(make_spec("before")))
    # A write that bypasses corpus.services (raw SQL, a script, the shell): the mark stays, the digest moves.
    Instruction.objects.filter(pk=made.pk).update(answer=TOO_LONG)
    made.refresh_from_db()
    assert made.checked_digest != made.content_digest
    version = build(make_spec("after"))
    assert made.pk not in exported_ids(version)
    assert version.counts["skipped_by_rule"]["short_answer_too_long"] >= 1


def test_a_check_under_older_rules_is_not_trusted_but_one_under_the_current_rules_is(corpus, make_spec):
    """Marks are made only by corpus.services after a check; forged here (content that breaks the rules,
    marked as if it had passed) to show which marks the export believes."""
    made = accepted_short(corpus["images"][1])
    Instruction.objects.filter(pk=made.pk).update(answer=TOO_LONG)
    Instruction.objects.filter(pk=made.pk).update(
        checked_digest=F("content_digest"), checked_rules=RULES_VERSION - 1
    )
    assert made.pk not in exported_ids(build(make_spec("older-rules")))
    Instruction.objects.filter(pk=made.pk).update(checked_rules=RULES_VERSION)
    assert made.pk in exported_ids(build(make_spec("current-rules")))


def test_a_status_move_keeps_a_current_mark_and_renews_a_stale_one(corpus, django_assert_num_queries):
    made = create_instruction(
        corpus["images"][0], type="short_vqa", question="What is parked?", answer="a car"
    )
    made.refresh_from_db()
    accepted = update_item(made, by=None, expected_version=made.version, status=ItemStatus.ACCEPTED)
    accepted.refresh_from_db()
    assert (accepted.checked_rules, accepted.checked_digest) == (RULES_VERSION, accepted.content_digest)
    # Valid content written around the services: the mark goes stale; the next move checks and renews it.
    Instruction.objects.filter(pk=made.pk).update(answer="a blue car")
    accepted.refresh_from_db()
    assert accepted.checked_digest != accepted.content_digest
    reopened = update_item(accepted, by=None, expected_version=accepted.version, status=ItemStatus.DRAFT)
    reopened.refresh_from_db()
    assert reopened.checked_digest == reopened.content_digest
