"""The row reader: text COPY on PostgreSQL must give back exactly what is stored (escapes included),
in (image, instruction) order, and leave the connection usable when the reader stops early."""

import pytest
from django.db import connection, transaction

from corpus.models import Instruction, ItemStatus
from exports.services.rows import iter_rows
from exports.services.specs import parse_selection
from tests.corpus.factories import ImageFactory, InstructionFactory

pytestmark = pytest.mark.django_db

AWKWARD = 'Line one\nline two\twith a tab, a back\\slash, "quotes", \\n literally, ünïcode ✓ and \\\\ two'


def test_rows_come_back_exactly_as_stored_with_escapes(corpus):
    image = corpus["images"][0]
    awkward = InstructionFactory(
        image=image,
        type="multiple_choice",
        status=ItemStatus.ACCEPTED,
        question=AWKWARD,
        options=["tab\there", "back\\slash", "new\nline", "plain"],
    )
    with transaction.atomic():
        rows = {int(r[0]): r for r in iter_rows(parse_selection({}))}
    row = rows[awkward.pk]
    assert row[3] == AWKWARD
    import orjson

    assert orjson.loads(row[4]) == ["tab\there", "back\\slash", "new\nline", "plain"]
    assert row[5] == "B"


def test_rows_are_ordered_by_image_then_instruction(corpus):
    # An instruction added later to the first image still comes before the second image's.
    late = InstructionFactory(image=corpus["images"][0], type="judgement", status=ItemStatus.ACCEPTED)
    with transaction.atomic():
        keys = [(int(r[6]), int(r[0])) for r in iter_rows(parse_selection({}))]
    assert keys == sorted(keys)
    assert (corpus["images"][0].pk, late.pk) in keys
    assert len(keys) == Instruction.objects.filter(status=ItemStatus.ACCEPTED).count()


def test_stopping_early_leaves_the_connection_usable(postgres, corpus):
    for _ in range(50):
        InstructionFactory(image=ImageFactory(), type="judgement", status=ItemStatus.ACCEPTED)
    with transaction.atomic():
        rows = iter_rows(parse_selection({}))
        next(rows)
        rows.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)
