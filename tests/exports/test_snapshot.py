"""A version reflects one consistent state: edits committed by others while a build streams are not
in it (PostgreSQL REPEATABLE READ snapshot)."""

import json
import tarfile
import threading

import pytest
from django.db import connections

from corpus.models import Instruction, ItemStatus
from corpus.services.items import update_item
from exports.services.build import build_archive
from tests.corpus.factories import InstructionFactory

# Not serialized_rollback: the role groups that a flush takes are made again by tests/conftest.py, and
# restoring the serialized ones on top of them would collide (a duplicate group after another
# transactional test).
pytestmark = pytest.mark.django_db(transaction=True)


def test_edits_committed_during_a_build_are_not_in_it(postgres, corpus, make_spec, annotator, tmp_path):
    spec = make_spec(formats=["llava"])
    target = Instruction.objects.filter(status=ItemStatus.ACCEPTED, type="short_vqa").first()
    before_ids = set(
        Instruction.objects.filter(status=ItemStatus.ACCEPTED)
        .exclude(pk=corpus["broken"].pk)
        .values_list("pk", flat=True)
    )
    edited = {}

    def edit_elsewhere():
        # Another connection, autocommit: an edit and a new accepted instruction, committed mid-build.
        try:
            item = Instruction.objects.get(pk=target.pk)
            update_item(item, by=annotator, expected_version=item.version, changes={"answer": "olive"})
            edited["new"] = InstructionFactory(
                image=target.image, type="judgement", status=ItemStatus.ACCEPTED
            ).pk
        finally:
            connections.close_all()

    def on_progress(done, total):
        if done == 0:  # the snapshot is open: the count has run, no row has been read yet
            worker = threading.Thread(target=edit_elsewhere)
            worker.start()
            worker.join()

    built = build_archive(spec, tmp_path / "work", on_progress=on_progress)
    assert Instruction.objects.get(pk=target.pk).version == 2 and edited["new"]
    with tarfile.open(built["archive"]) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        records = json.loads(tar.extractfile("data/train.llava.json").read())
    revisions = {row[0]: row[1] for row in manifest["instructions"]}
    assert set(revisions) == before_ids
    assert revisions[target.pk] == 1
    answers = [
        turn["value"] for record in records for turn in record["conversations"] if turn["from"] == "gpt"
    ]
    assert "olive" not in answers
