"""recheck_rules (and its command): check what is not yet known valid under the current rules, remember
the valid rows, leave the invalid ones alone; a second run has nothing to do."""

import io

import pytest
from django.core.management import call_command
from django.db.models import F

from corpus.models import Instruction, ItemStatus
from corpus.rules import RULES_VERSION
from corpus.services.items import recheck_rules
from tests.corpus.factories import InstructionFactory

pytestmark = pytest.mark.django_db


def test_recheck_marks_valid_rows_written_by_other_means_and_leaves_invalid_ones():
    valid = InstructionFactory(
        type="judgement", question="Is it red?", answer="Yes", status=ItemStatus.ACCEPTED
    )
    invalid = InstructionFactory(
        type="judgement", question="Is it red?", answer="Maybe", status=ItemStatus.ACCEPTED
    )
    out = io.StringIO()
    call_command("recheck_rules", stdout=out)
    assert f"rules v{RULES_VERSION}: checked 2 instructions" in out.getvalue()
    assert "1 valid, 1 invalid" in out.getvalue()
    valid.refresh_from_db()
    invalid.refresh_from_db()
    assert (valid.checked_rules, valid.checked_digest) == (RULES_VERSION, valid.content_digest)
    assert invalid.checked_rules is None and invalid.checked_digest == ""
    # Nothing left but the invalid row; a row checked under older rules is checked again.
    assert recheck_rules() == {"checked": 1, "valid": 0, "invalid": 1}
    Instruction.objects.filter(pk=valid.pk).update(checked_rules=RULES_VERSION - 1)
    assert recheck_rules(batch_size=1) == {"checked": 2, "valid": 1, "invalid": 1}


def test_recheck_marks_the_content_it_checked_not_what_is_there_later():
    """The mark is the digest of the content that was checked (read with it), not of whatever the row
    holds when the mark is written: an edit after the check leaves a mark that matches nothing."""
    row = InstructionFactory(
        type="judgement", question="Is it red?", answer="Yes", status=ItemStatus.ACCEPTED
    )
    checked_digest = Instruction.objects.get(pk=row.pk).content_digest

    def edit_after_the_first_batch(counts):
        Instruction.objects.filter(pk=row.pk).update(answer="Maybe")

    recheck_rules(on_batch=edit_after_the_first_batch)
    row.refresh_from_db()
    assert row.checked_digest == checked_digest != row.content_digest
    assert not Instruction.objects.filter(pk=row.pk, checked_digest=F("content_digest")).exists()
