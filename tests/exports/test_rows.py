"""The row reader: text COPY on PostgreSQL must give back exactly what is stored (escapes included),
in (image, instruction) order, and leave the connection usable when the reader stops early."""

import pytest
from django.db import connection, transaction

from corpus.models import Instruction, ItemStatus
from exports.services.rows import iter_images, iter_rows
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


def _grouped_rows(selection) -> list:
    """iter_rows grouped by image by hand: what iter_images must yield."""
    import orjson

    groups: list = []
    for row in iter_rows(selection):
        iid, ver, typ, question, options, answer, image_id, sha, file_name, dom, checked, dialogue, turn = row
        if not groups or groups[-1][0] != int(image_id):
            groups.append([int(image_id), sha, file_name, dom, []])
        checked = checked in (True, 1, "t")  # SQLite gives 1/0, PostgreSQL's text COPY t/f
        groups[-1][4].append(
            [
                int(iid),
                int(ver),
                typ,
                question,
                orjson.loads(options),
                answer,
                checked,
                int(dialogue),
                int(turn),
            ]
        )
    return groups


def test_images_hold_the_rows_grouped_by_image_exactly_as_stored(corpus):
    image = corpus["images"][0]
    awkward = InstructionFactory(
        image=image,
        type="multiple_choice",
        status=ItemStatus.ACCEPTED,
        question=AWKWARD,
        options=["tab\there", "back\\slash", "new\nline", "plain", 'a "quote"'],
    )
    # Several instructions on one image, created out of order of their image.
    InstructionFactory(image=corpus["images"][1], type="judgement", status=ItemStatus.ACCEPTED)
    InstructionFactory(image=image, type="long_vqa", status=ItemStatus.ACCEPTED)
    with transaction.atomic():
        selection = parse_selection({})
        images = list(iter_images(selection))
        expected = _grouped_rows(selection)
    assert images == expected
    assert [i[0] for i in images] == sorted(i[0] for i in images)
    for image_row in images:
        assert [row[0] for row in image_row[4]] == sorted(row[0] for row in image_row[4])
    by_id = {row[0]: row for image_row in images for row in image_row[4]}
    assert by_id[awkward.pk][3] == AWKWARD
    assert by_id[awkward.pk][4] == ["tab\there", "back\\slash", "new\nline", "plain", 'a "quote"']


def test_images_of_an_empty_selection_are_none(corpus):
    with transaction.atomic():
        assert list(iter_images(parse_selection({"types": ["long_vqa"], "models": ["no-such-model"]}))) == []


def test_stopping_the_image_stream_early_leaves_the_connection_usable(postgres, corpus):
    for _ in range(50):
        InstructionFactory(image=ImageFactory(), type="judgement", status=ItemStatus.ACCEPTED)
    with transaction.atomic():
        images = iter_images(parse_selection({}))
        next(images)
        images.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)
