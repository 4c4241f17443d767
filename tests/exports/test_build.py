"""Building versions end to end through the service the Celery task calls: every format parsed back
record by record, the manifest and card, splits, byte-identical rebuilds, immutability, diffs."""

import datetime
import hashlib
import io
import json
import tarfile

import pyarrow.parquet as pq
import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from corpus.models import Instruction, ItemStatus
from corpus.rules import check_instruction
from corpus.services.items import update_item
from corpus.transitions import InvalidTransition, transition
from exports.models import ExportVersion, ExportVersionEvent, VersionStatus
from exports.selectors import diff_versions
from exports.services.build import split_of, start_attempt
from exports.services.specs import InvalidSpec, allocate_version, request_build
from tests.conftest import require_module
from tests.corpus.factories import ImageFactory, InstructionFactory

from .conftest import archive_path, build, member_names, read_member

pytestmark = pytest.mark.django_db


def llava(version, split="train"):
    return json.loads(read_member(version, f"data/{split}.llava.json"))


def manifest(version):
    return json.loads(read_member(version, "manifest.json"))


def accepted_valid(corpus):
    return {
        i.pk: i
        for i in Instruction.objects.filter(status=ItemStatus.ACCEPTED)
        if not check_instruction(i.type, i.question, i.options, i.answer)
    }


def test_llava_records_alternate_turns_with_one_image_token_and_images_inside_the_archive(corpus, make_spec):
    version = build(make_spec(train_ratio=0.5, seed=corpus["seed"]))
    assert version.status == VersionStatus.DONE, version.error
    names = set(member_names(version))
    seen_instructions = 0
    for split in version.counts["by_split"]:
        for record in llava(version, split):
            turns = record["conversations"]
            assert turns[0]["from"] == "human"
            assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
            assert turns[0]["value"].startswith("<image>\n")
            assert sum(t["value"].count("<image>") for t in turns) == 1
            assert record["image"] in names
            seen_instructions += len(turns) // 2
    assert seen_instructions == version.counts["instructions"] == len(accepted_valid(corpus))


def test_each_format_holds_the_same_records(corpus, make_spec):
    version = build(make_spec(train_ratio=0.5, seed=corpus["seed"]))
    for split, n_records in version.counts["records_by_split"].items():
        from_llava = llava(version, split)
        lines = read_member(version, f"data/{split}.sharegpt.jsonl").decode().splitlines()
        from_sharegpt = [json.loads(line) for line in lines]
        table = pq.read_table(io.BytesIO(read_member(version, f"data/{split}.parquet")))
        rows = table.to_pylist()
        assert len(from_llava) == len(from_sharegpt) == len(rows) == n_records
        for a, b, row in zip(from_llava, from_sharegpt, rows, strict=True):
            assert a == b
            assert row["id"] == a["id"]
            assert row["conversations"] == a["conversations"]
            # The Parquet row carries the image's own bytes.
            sha = a["image"].split("/")[-1].split(".")[0]
            assert hashlib.sha256(row["image"]["bytes"]).hexdigest() == sha
            assert read_member(version, a["image"]) == row["image"]["bytes"]


def test_parquet_loads_with_hugging_face_datasets(corpus, make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    version = build(make_spec(formats=["parquet"]))
    path = tmp_path / "train.parquet"
    path.write_bytes(read_member(version, "data/train.parquet"))
    train_records = version.counts["records_by_split"].get("train", 0)
    assert pq.read_table(path).num_rows == train_records
    datasets = require_module("datasets", "the dev extra (make install-dev) installs it")
    loaded = datasets.load_dataset("parquet", data_files={"train": str(path)})["train"]
    assert len(loaded) == train_records
    assert loaded.features["image"].__class__.__name__ == "Image"


def test_questions_and_answers_match_the_database_per_type(corpus, make_spec):
    version = build(make_spec(conversation_mode="per_instruction", train_ratio=1))
    valid = accepted_valid(corpus)
    records = llava(version)
    assert len(records) == len(valid)
    for record in records:
        instruction = valid[int(record["id"].removeprefix("instruction-"))]
        human, gpt = record["conversations"]
        assert human["value"].startswith(f"<image>\n{instruction.question}")
        assert gpt["value"] == instruction.answer
        if instruction.type == "multiple_choice":
            assert "\nA. red\nB. green\nC. blue\nD. black\nAnswer with the option's letter." in human["value"]


def test_invalid_items_are_skipped_and_counted_and_only_selected_statuses_export(corpus, make_spec):
    version = build(make_spec())
    ids = {row[0] for row in manifest(version)["instructions"]}
    assert corpus["broken"].pk not in ids
    assert version.counts["skipped_invalid"] == 1
    assert version.counts["skipped_by_rule"] == {"short_answer_too_long": 1}
    statuses = set(Instruction.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {ItemStatus.ACCEPTED}
    drafts = build(make_spec("drafts", selection={"statuses": ["draft"]}))
    assert drafts.counts["instructions"] == Instruction.objects.filter(status=ItemStatus.DRAFT).count()


def test_selection_by_domain_and_type(corpus, make_spec):
    version = build(make_spec(selection={"domains": ["charts"], "types": ["judgement", "multiple_choice"]}))
    assert version.counts["by_domain"] == {"charts": 6}
    assert version.counts["by_type"] == {"judgement": 3, "multiple_choice": 3}


def test_manifest_lists_every_instruction_with_its_revision_counts_and_file_hashes(corpus, make_spec):
    version = build(make_spec(train_ratio=0.5, seed=corpus["seed"]))
    data = manifest(version)
    valid = accepted_valid(corpus)
    assert {row[0]: row[1] for row in data["instructions"]} == {pk: i.version for pk, i in valid.items()}
    assert data["counts"]["instructions"] == len(valid)
    assert data["spec"]["selection"]["statuses"] == ["accepted"]
    assert data["software"]["mminstruct-studio"]
    for name, entry in data["files"].items():
        content = read_member(version, name)
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
        assert len(content) == entry["bytes"]
    assert version.sha256 == hashlib.sha256(archive_path(version).read_bytes()).hexdigest()
    # Copied images are listed too, each with its sha256 and size.
    listed = {path: (sha, size) for path, sha, size in data["image_files"]}
    in_archive = [name for name in member_names(version) if name.startswith("images/")]
    assert sorted(listed) == sorted(in_archive) and len(listed) == len(corpus["images"])
    for name in in_archive:
        content = read_member(version, name)
        assert listed[name] == (hashlib.sha256(content).hexdigest(), len(content))


def test_dataset_card_has_tables_and_a_chart_of_domains_and_types(corpus, make_spec):
    version = build(make_spec())
    card = read_member(version, "README.md").decode()
    assert "| domain |" in card and "| type |" in card
    assert "Instructions by domain" in card and "Instructions by type" in card
    assert "█" in card
    for name, entry in version.manifest["files"].items():
        assert f"`{name}`" in card and entry["sha256"] in card


def test_no_image_lands_in_two_splits_and_the_split_is_the_stable_hash(corpus, make_spec):
    version = build(make_spec(train_ratio=0.5, seed=corpus["seed"]))
    where: dict[str, set[str]] = {}
    for split in version.counts["by_split"]:
        for record in llava(version, split):
            where.setdefault(record["image"], set()).add(split)
    assert all(len(splits) == 1 for splits in where.values())
    assert len(version.counts["by_split"]) == 2, "the chosen seed puts the six images into both splits"
    for image in corpus["images"]:
        expected = split_of(corpus["seed"], image.sha256, 0.5)
        assert any(path.endswith(image.sha256 + ".png") for path, s in where.items() if expected in s)


def test_per_instruction_mode_keeps_an_image_in_one_split(corpus, make_spec):
    version = build(make_spec(train_ratio=0.5, seed=corpus["seed"], conversation_mode="per_instruction"))
    where: dict[str, set[str]] = {}
    for split in version.counts["by_split"]:
        for record in llava(version, split):
            where.setdefault(record["image"], set()).add(split)
    assert all(len(splits) == 1 for splits in where.values())
    assert version.counts["records"] == version.counts["instructions"]


def test_reference_mode_writes_media_paths_and_copies_no_image(corpus, make_spec, settings):
    version = build(make_spec(image_mode="reference", train_ratio=1))
    assert not [n for n in member_names(version) if n.startswith("images/")]
    for record in llava(version):
        assert (settings.MEDIA_ROOT / record["image"]).is_file()
    assert manifest(version)["images"]["mode"] == "reference"


def test_same_spec_on_unchanged_data_gives_byte_identical_archives(corpus, make_spec):
    spec = make_spec(train_ratio=0.5, seed=corpus["seed"])
    first, second = build(spec), build(spec)
    assert (first.number, second.number) == (1, 2)
    assert first.sha256 == second.sha256
    assert archive_path(first).read_bytes() == archive_path(second).read_bytes()
    with tarfile.open(archive_path(first)) as tar:
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in tar.getmembers()} == {(0, 0, 0, "", "")}


def test_an_edit_after_a_build_leaves_the_version_unchanged_and_shows_in_the_next_diff(
    corpus, make_spec, annotator
):
    spec = make_spec(train_ratio=0.5, seed=corpus["seed"])
    v1 = build(spec)
    v1_bytes = archive_path(v1).read_bytes()
    edited = Instruction.objects.filter(status=ItemStatus.ACCEPTED, type="short_vqa").first()
    update_item(edited, by=annotator, expected_version=edited.version, changes={"answer": "dark green"})
    rejected = Instruction.objects.filter(status=ItemStatus.ACCEPTED, type="judgement").first()
    update_item(rejected, by=annotator, expected_version=rejected.version, status="rejected", reason="wrong")
    added = InstructionFactory(image=corpus["images"][1], type="judgement", status=ItemStatus.ACCEPTED)

    v2 = build(spec)
    v1.refresh_from_db()
    assert archive_path(v1).read_bytes() == v1_bytes
    assert hashlib.sha256(v1_bytes).hexdigest() == v1.sha256
    assert v2.sha256 != v1.sha256

    diff = diff_versions(v1, v2)
    assert [(c[0], c[1]) for c in diff.changes] == sorted(
        [(edited.pk, "changed"), (rejected.pk, "removed"), (added.pk, "added")]
    )
    changed = next(c for c in diff.changes if c[1] == "changed")
    assert changed[2:4] == (1, 2)
    summary = diff.summary()
    assert (summary["added"], summary["removed"], summary["changed"]) == (1, 1, 1)
    assert summary["by_type"]["short_vqa"] == {"changed": 1}
    # The diff reads the archives, not the live tables: deleting the data does not change it.
    Instruction.objects.all().delete()
    assert diff_versions(v1, v2).summary() == summary


def test_a_done_version_cannot_be_rewritten_by_the_state_machine_or_the_database(corpus, make_spec):
    version = build(make_spec(formats=["llava"]))
    events = ExportVersionEvent.objects.filter(version=version).count()
    for to in VersionStatus.values:  # the table holds no move out of done: refused before any SQL
        with pytest.raises(InvalidTransition):
            transition(version, "status", to)
    # Beneath the table, the database's trigger refuses to change a done row's status or content.
    for change in ({"sha256": "0" * 64}, {"status": VersionStatus.FAILED}, {"counts": {}}):
        with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
            ExportVersion.objects.filter(pk=version.pk).update(**change)
    after = ExportVersion.objects.get(pk=version.pk)
    assert (after.status, after.sha256, after.counts) == (VersionStatus.DONE, version.sha256, version.counts)
    assert ExportVersionEvent.objects.filter(version=version).count() == events


def test_moves_follow_the_table_and_lose_races_without_overwriting(corpus, make_spec):
    spec = make_spec(formats=["llava"])
    version = allocate_version(spec, by=None)
    stale = ExportVersion.objects.get(pk=version.pk)
    assert start_attempt(version)
    assert version.attempt == 1
    # `stale` still believes the version is queued (attempt 0): its compare-and-swap loses.
    assert start_attempt(stale) is False
    assert transition(stale, "status", VersionStatus.QUEUED) is False
    with pytest.raises(InvalidTransition):
        transition(stale, "status", VersionStatus.DONE)  # queued → done is not in the table
    moves = list(ExportVersionEvent.objects.filter(version=version).values_list("from_status", "to_status"))
    assert moves == [("", "queued"), ("queued", "building")]
    assert ExportVersion.objects.get(pk=version.pk).attempt == 1


def test_a_redelivered_build_leaves_a_live_build_alone_and_restarts_a_silent_one(
    corpus, make_spec, settings, django_capture_on_commit_callbacks
):
    from exports.services.build import build_version

    spec = make_spec(formats=["llava"])
    version = allocate_version(spec, by=None)
    start_attempt(version)  # a worker started: its heartbeat is fresh
    left = build_version(version)
    assert (left.status, left.attempt) == (VersionStatus.BUILDING, 1)

    # The worker died: its heartbeat is older than the timeout. The redelivered task queues it again.
    ExportVersion.objects.filter(pk=version.pk).update(
        heartbeat_at=timezone.now() - datetime.timedelta(seconds=settings.EXPORTS_HEARTBEAT_TIMEOUT + 1)
    )
    with django_capture_on_commit_callbacks(execute=False) as queued:
        requeued = build_version(version)
    assert (requeued.status, requeued.attempt, len(queued)) == (VersionStatus.QUEUED, 1, 1)
    rebuilt = build_version(requeued)  # what the queued task runs
    assert rebuilt.status == VersionStatus.DONE and rebuilt.attempt == 2
    again = build_version(rebuilt)
    assert (again.sha256, again.attempt, again.finished_at) == (rebuilt.sha256, 2, rebuilt.finished_at)
    notes = list(ExportVersionEvent.objects.filter(version=version).values_list("to_status", "note"))
    assert notes[2][0] == "queued" and "no heartbeat" in notes[2][1] and "attempt 2" in notes[2][1]
    assert notes[3] == ("building", "restarted from scratch (attempt 2)")


def test_a_missing_image_file_fails_the_build_with_the_reason(corpus, make_spec, settings):
    (settings.MEDIA_ROOT / corpus["images"][2].file.name).unlink()
    version = build(make_spec(formats=["llava"]))
    assert version.status == VersionStatus.FAILED
    assert "image file missing" in version.error
    assert not list((settings.EXPORTS_ROOT / ".building").glob("*"))


def test_an_image_file_changed_on_disk_fails_the_build_instead_of_shipping_other_bytes(
    corpus, make_spec, settings
):
    path = settings.MEDIA_ROOT / corpus["images"][1].file.name
    path.write_bytes(path.read_bytes()[:-1] + b"X")  # same size, other bytes: not the sha256 imported
    version = build(make_spec(formats=["llava"]))
    assert version.status == VersionStatus.FAILED
    assert "does not match its sha256" in version.error
    assert not version.sha256


def test_version_numbers_are_allocated_in_order(
    corpus, make_spec, researcher, django_capture_on_commit_callbacks
):
    spec = make_spec(formats=["llava"])
    with django_capture_on_commit_callbacks() as callbacks:
        versions = [request_build(spec, by=researcher) for _ in range(3)]
    assert [v.number for v in versions] == [1, 2, 3]
    assert len(callbacks) == 3  # one build task queued per version, after commit


def test_bad_specs_are_refused_with_each_reason(corpus, make_spec):
    with pytest.raises(InvalidSpec) as info:
        make_spec(
            "Bad Name",
            formats=["csv"],
            train_ratio=2,
            selection={"domains": ["nope"], "types": ["essay"], "statuses": ["invalid"], "date_from": "x"},
        )
    assert set(info.value.errors) == {
        "name",
        "formats",
        "train_ratio",
        "domains",
        "types",
        "statuses",
        "date_from",
    }
    make_spec("taken")
    with pytest.raises(InvalidSpec, match="exists already"):
        make_spec("taken")


def test_a_new_image_file_in_the_corpus_does_not_move_other_images_between_splits(corpus, make_spec):
    spec = make_spec(train_ratio=0.5, seed=corpus["seed"])
    v1 = build(spec)
    image = ImageFactory(domain=corpus["domains"][0])
    InstructionFactory(image=image, type="short_vqa", status=ItemStatus.ACCEPTED)
    v2 = build(spec)
    before = {row[0]: row[4] for row in manifest(v1)["instructions"]}
    after = {row[0]: row[4] for row in manifest(v2)["instructions"]}
    assert {k: after[k] for k in before} == before


def test_a_diff_is_computed_once_and_then_read_from_its_cache(corpus, make_spec, annotator):
    from exports.selectors import cached_diff

    spec = make_spec(formats=["llava"])
    v1 = build(spec)
    edited = Instruction.objects.filter(status=ItemStatus.ACCEPTED, type="long_vqa").first()
    update_item(
        edited,
        by=annotator,
        expected_version=edited.version,
        changes={"answer": "A new and longer answer here."},
    )
    v2 = build(spec)
    first = cached_diff(v1, v2)
    archive_path(v1).unlink()  # the cached diff no longer needs the archives
    second = cached_diff(v1, v2)
    assert second.summary() == first.summary() and second.changes == first.changes
    assert first.changes == [(edited.pk, "changed", 1, 2, edited.image.domain.slug, "long_vqa")]


def test_selection_by_model_and_creation_date(corpus, make_spec):
    import datetime

    from django.utils import timezone

    old = Instruction.objects.filter(status=ItemStatus.ACCEPTED, type="judgement").first()
    Instruction.objects.filter(pk=old.pk).update(
        created_at=timezone.make_aware(datetime.datetime(2024, 1, 15, 12)), model_name="other-model"
    )
    by_model = build(make_spec("by-model", selection={"models": ["other-model"]}))
    assert [row[0] for row in manifest(by_model)["instructions"]] == [old.pk]
    in_january = build(make_spec("january", selection={"date_from": "2024-01-15", "date_to": "2024-01-15"}))
    assert [row[0] for row in manifest(in_january)["instructions"]] == [old.pk]
    after = build(make_spec("after", selection={"date_from": "2024-01-16"}))
    assert old.pk not in {row[0] for row in manifest(after)["instructions"]}
    assert after.counts["instructions"] == len(accepted_valid(corpus)) - 1


def test_an_empty_selection_builds_empty_but_loadable_files(corpus, make_spec):
    version = build(make_spec(selection={"types": ["long_vqa"], "models": ["nobody"]}))
    assert version.status == VersionStatus.DONE
    assert version.counts["instructions"] == 0 and version.counts["records"] == 0
    assert llava(version) == []
    assert read_member(version, "data/train.sharegpt.jsonl") == b""
    assert pq.read_table(io.BytesIO(read_member(version, "data/train.parquet"))).num_rows == 0
    assert manifest(version)["instructions"] == []
