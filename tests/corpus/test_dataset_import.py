"""Importing instruction datasets (issue 14, item 1) through the service, the command and the readers:
records typed by the rules, images reused from the pool, unreadable records skipped and named, the
checkpoint that a resumed run starts from."""

import datetime
import io
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from corpus.models import (
    DatasetImport,
    Domain,
    Image,
    ImageEvent,
    ImportBatchStatus,
    Instruction,
    ItemStatus,
    Origin,
    ReviewStatus,
    Revision,
)
from corpus.rules import InstructionType as T
from corpus.services.dataset_import import (
    create_import,
    import_dataset,
    run_dataset_import,
    stage_dataset_upload,
    sweep_dataset_imports,
)
from corpus.services.dataset_readers import read_llava
from corpus.services.dataset_turns import BadConversation, pairs, type_turn
from corpus.tasks import import_dataset as import_dataset_task
from corpus.transitions import transition
from exports.writers import Record
from exports.writers.parquet import write_parquet
from exports.writers.sharegpt import write_sharegpt
from review.services.queue import claim_next_image
from tests.corpus.factories import ImageFactory, png_bytes
from tests.workers import wait_for

pytestmark = pytest.mark.django_db


def turns(*pairs_: tuple[str, str]) -> list[dict]:
    out = []
    for question, answer in pairs_:
        out += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return out


# --- typing turns by the rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "answer", "expected"),
    [
        ("<image>\nIs the sky blue?", "yes.", (T.JUDGEMENT, "Is the sky blue?", [], "Yes")),
        (
            "Which animal is it?\nA. cat\nB. dog\n(C) horse",
            "B. dog",
            (T.MULTIPLE_CHOICE, "Which animal is it?", ["cat", "dog", "horse"], "B"),
        ),
        ("What colour is the car?", "dark red", (T.SHORT_VQA, "What colour is the car?", [], "dark red")),
        (
            "What is happening?<image>",
            "Two children are flying a kite in a park.",
            (T.LONG_VQA, "What is happening?", [], "Two children are flying a kite in a park."),
        ),
        # Our own hint names the type, and is taken off.
        (
            "<image>\nWhat is in the corner?\nAnswer with a word or short phrase.",
            "A small red car is parked there.",
            (T.SHORT_VQA, "What is in the corner?", [], "A small red car is parked there."),
        ),
        # LLaVA-1.5's.
        (
            "What is this?\nAnswer the question using a single word or phrase.",
            "bus",
            (T.SHORT_VQA, "What is this?", [], "bus"),
        ),
    ],
)
def test_each_turn_is_typed_by_the_rules(question, answer, expected):
    turn = type_turn(question, answer)
    assert (turn.type, turn.question, turn.options, turn.answer) == expected
    assert turn.flag == ""


def test_a_turn_that_fits_no_type_is_kept_and_flagged_for_a_person():
    turn = type_turn("Describe it", "a long rambling answer with many words and no full stop at the end")
    assert turn.type == T.LONG_VQA
    assert turn.flag.startswith("imported: fits no instruction type") and "Long VQA" in turn.flag
    assert turn.answer == "a long rambling answer with many words and no full stop at the end"


def test_lettered_lines_are_options_only_when_the_answer_is_one_of_their_letters():
    turn = type_turn("Steps:\nA. open\nB. close", "You open it first and then you close it.")
    assert turn.type == T.LONG_VQA and turn.options == [] and "A. open" in turn.question


@pytest.mark.parametrize(
    ("conversation", "reason"),
    [
        ([], "no turns"),
        (None, "no turns"),
        ([{"from": "gpt", "value": "Yes"}], "an answer without a question"),
        (turns(("Q?", "A"))[:1], "has no answer"),
        ([{"from": "human", "value": 3}], "no from/value text"),
        ([{"from": "narrator", "value": "x"}], "unknown speaker"),
    ],
)
def test_conversations_without_question_answer_pairs_are_refused_with_the_reason(conversation, reason):
    with pytest.raises(BadConversation, match=reason):
        pairs(conversation)


def test_system_turns_are_left_out_and_user_assistant_roles_read():
    convo = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    convo.append({"role": "assistant", "content": "A"})
    assert pairs(convo) == [("Q?", "A")]


# --- the LLaVA reader --------------------------------------------------------------------------------


def test_the_llava_reader_skips_a_broken_element_of_an_indented_file_and_reads_on(tmp_path):
    good = [{"id": f"r{n}", "image": "x.png", "conversations": turns(("Q?", "Yes"))} for n in range(4)]
    text = json.dumps(good, indent=2)
    # Break the second element: a missing comma between two of its keys.
    start = text.index('"id": "r1"')
    text = text[:start] + '"id": "r1" "image": "x.png",' + text[text.index('"conversations"', start) :]
    path = tmp_path / "data.json"
    path.write_text(text)
    records = list(read_llava(path))
    assert [(r.number, r.id, r.error) for r in records] == [
        (1, "r0", ""),
        (2, "", "broken JSON"),
        (3, "r2", ""),
        (4, "r3", ""),
    ]
    assert records[2].line == text[: text.index('"id": "r2"')].count("\n")  # the line of its "{"


def test_the_llava_reader_reads_a_file_larger_than_its_chunk(tmp_path, monkeypatch):
    from corpus.services import dataset_readers

    monkeypatch.setattr(dataset_readers, "CHUNK_CHARS", 100)
    rows = [{"id": n, "image": f"{n}.png", "conversations": turns(("Q? " * 20, "Yes"))} for n in range(50)]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows))
    read = list(read_llava(path))
    assert [r.id for r in read] == [str(n) for n in range(50)] and not any(r.error for r in read)


# --- the acceptance case ---------------------------------------------------------------------------


@pytest.fixture
def llava_with_zip(tmp_path):
    """1,000 records about 200 images in a zip: two of the images are in the pool already, three
    records cannot be read (a missing image, broken JSON, no turns)."""
    pool = [ImageFactory(content=png_bytes(9000 + n)) for n in range(2)]
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(200):
            data = png_bytes(9000 + n) if n < 2 else png_bytes(20_000 + n * 7, size=(40, 30))
            zf.writestr(f"images/img-{n:03d}.png", data)
    lines = []
    for n in range(1000):
        record = {
            "id": f"rec-{n}",
            "image": f"img-{n % 200:03d}.png",
            "conversations": turns(
                ("<image>\nIs there a gradient?", "Yes"),
                ("What does the picture show?", "It shows a smooth colour gradient across the frame."),
            ),
        }
        if n == 100:
            record["image"] = "img-missing.png"
        if n == 500:
            record["conversations"] = []
        line = json.dumps(record)
        if n == 700:
            line = line.replace('"conversations":', '"conversations"')  # broken JSON
        lines.append(line)
    data = tmp_path / "data.json"
    data.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    return {"data": data, "images": archive, "pool": pool}


def test_a_llava_file_with_a_zip_imports_names_the_broken_records_and_reuses_pool_images(
    llava_with_zip, admin_user, annotator, client
):
    domain = Domain.objects.get(slug="ocr")
    result = import_dataset(
        llava_with_zip["data"],
        format="llava",
        domain=domain,
        name="acceptance",
        images=llava_with_zip["images"],
        by=admin_user,
    )
    summary = result.summary
    assert result.status == ImportBatchStatus.DONE
    assert (summary["records"], summary["imported_records"], summary["skipped_records"]) == (1000, 997, 3)
    skipped = {s["record"]: s for s in summary["skipped"]}
    assert set(skipped) == {101, 501, 701}
    assert "img-missing.png" in skipped[101]["reason"] and skipped[101]["id"] == "rec-100"
    assert skipped[501]["reason"] == "no turns"
    assert skipped[701]["reason"] == "broken JSON" and skipped[701]["line"] == 702
    reused = {r["name"]: r["image_id"] for r in summary["reused"]}
    assert reused == {
        "img-000.png": llava_with_zip["pool"][0].pk,
        "img-001.png": llava_with_zip["pool"][1].pk,
    }
    assert summary["images"] == {
        "imported": 198,
        "reused": 2,
        "near_duplicates": summary["images"]["near_duplicates"],
    }
    assert Image.objects.count() == 200  # nothing copied twice
    assert summary["instructions"] == 997 * 2 and summary["by_type"] == {"judgement": 997, "long_vqa": 997}

    imported = Instruction.objects.filter(dataset_import=result)
    assert imported.count() == 1994
    assert set(imported.values_list("origin", "status")) == {(Origin.IMPORTED, ItemStatus.DRAFT)}
    first = imported.filter(source_record="rec-0").order_by("id")
    assert [i.type for i in first] == [T.JUDGEMENT, T.LONG_VQA]
    assert Revision.objects.filter(instruction__dataset_import=result, version=1).count() == 1994
    # The rules' verdict is remembered as the database computes the digest: exports need not check again.
    assert not imported.exclude(checked_digest=F("content_digest")).exists()

    # In the review queue, with their origin; each image's move there has its event.
    assert set(Image.objects.values_list("review_status", flat=True)) == {ReviewStatus.PENDING}
    moves = ImageEvent.objects.filter(from_status=ReviewStatus.NEW, to_status=ReviewStatus.PENDING)
    assert (
        moves.count() == 200 and moves.filter(actor=admin_user, note__startswith="new drafts").count() == 200
    )
    held = claim_next_image(annotator, domain_ids=[domain.pk])
    assert held is not None
    client.force_login(annotator)
    page = client.get(f"/review/image/{held}/").content.decode()
    assert "· Imported · record rec-" in page


def test_the_command_prints_the_summary_and_imports_as_accepted(llava_with_zip, capsys):
    call_command(
        "import_dataset",
        str(llava_with_zip["data"]),
        "--format",
        "llava",
        "--domain",
        "ocr",
        "--images",
        str(llava_with_zip["images"]),
        "--name",
        "accepted-set",
        "--status",
        "accepted",
        "--no-progress",
    )
    out = capsys.readouterr().out
    assert "records read: 1000; imported: 997; skipped: 3" in out
    assert "skipped  record 701 (line 702): broken JSON" in out
    assert "reused   img-000.png" in out
    result = DatasetImport.objects.get(name="accepted-set")
    assert set(Instruction.objects.filter(dataset_import=result).values_list("status", flat=True)) == {
        ItemStatus.ACCEPTED
    }
    # Accepted items need no review: the images are not queued.
    assert not Image.objects.filter(review_status=ReviewStatus.PENDING).exists()


def test_the_command_refuses_an_unknown_domain_and_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="unknown domain"):
        call_command("import_dataset", str(tmp_path), "--format", "llava", "--domain", "nope")
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_dataset", str(tmp_path / "x.json"), "--format", "llava", "--domain", "ocr")


def test_a_file_that_is_not_a_json_array_fails_the_import_with_the_reason(tmp_path):
    data = tmp_path / "data.json"
    data.write_text('{"id": 1}')
    result = import_dataset(data, format="llava", domain=Domain.objects.get(slug="ocr"), name="x")
    assert result.status == ImportBatchStatus.FAILED and "not a JSON array" in result.error


# --- the other formats -----------------------------------------------------------------------------


def test_sharegpt_lines_and_parquet_rows_with_embedded_images_import(tmp_path):
    domain = Domain.objects.get(slug="ocr")
    folder = tmp_path / "imgs"
    folder.mkdir()
    records = []
    for n in range(3):
        (folder / f"{n}.png").write_bytes(png_bytes(700 + n))
        conversation = turns(("<image>\nIs it a gradient?\nAnswer Yes or No.", "Yes"))
        records.append(
            Record(f"s{n}", f"{n}.png", "ocr", conversation, [n], ["judgement"], str(folder / f"{n}.png"))
        )
    jsonl = tmp_path / "data.jsonl"
    with open(jsonl, "wb") as fp:
        write_sharegpt(records, fp)
    with open(jsonl, "ab") as fp:
        fp.write(b'{"id": "broken",\n')
    result = import_dataset(jsonl, format="sharegpt", domain=domain, name="sgpt", images=folder)
    assert (result.summary["imported_records"], result.summary["skipped_records"]) == (3, 1)
    assert result.summary["skipped"][0] == {"record": 4, "line": 4, "id": "", "reason": "broken JSON"}

    parquet = tmp_path / "data.parquet"
    with open(parquet, "wb") as fp:
        write_parquet(records, fp)
    again = import_dataset(parquet, format="parquet", domain=domain, name="pq")
    assert again.summary["imported_records"] == 3
    assert again.summary["images"]["reused"] == 3  # the same bytes, embedded: found in the pool by sha256
    assert Image.objects.count() == 3


def test_a_parquet_file_without_the_columns_fails_with_their_names(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"text": ["a"]}), path)
    result = import_dataset(path, format="parquet", domain=Domain.objects.get(slug="ocr"), name="x")
    assert result.status == ImportBatchStatus.FAILED and "image and conversations" in result.error


def test_an_image_path_that_leaves_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.png").write_bytes(png_bytes(1))
    folder = tmp_path / "imgs"
    folder.mkdir()
    data = tmp_path / "in" / "data.json"
    data.parent.mkdir()
    data.write_text(json.dumps([{"image": "../secret.png", "conversations": turns(("Q?", "Yes"))}]))
    result = import_dataset(
        data, format="llava", domain=Domain.objects.get(slug="ocr"), name="x", images=folder
    )
    assert result.summary["skipped"][0]["reason"].endswith("leaves the image folder")
    assert not Image.objects.exists()


# --- resuming ----------------------------------------------------------------------------------------


def test_a_resumed_import_starts_after_its_checkpoint_and_a_finished_one_is_left_alone(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(31))
    rows = [{"id": f"r{n}", "image": "a.png", "conversations": turns(("Q?", "Yes"))} for n in range(5)]
    data = tmp_path / "data.json"
    data.write_text(json.dumps(rows))
    dataset_import = create_import(
        data_file=str(data),
        format="llava",
        domain=Domain.objects.get(slug="ocr"),
        name="r",
        images=str(folder),
    )
    # A worker that died after committing the first three records (its checkpoint says so).
    assert transition(dataset_import, "status", ImportBatchStatus.RUNNING, fields={"records_done": 3})
    run_dataset_import(dataset_import.pk)
    dataset_import.refresh_from_db()
    assert dataset_import.status == ImportBatchStatus.DONE
    assert sorted(Instruction.objects.values_list("source_record", flat=True)) == ["r3", "r4"]
    assert run_dataset_import(dataset_import.pk) is None
    assert Instruction.objects.count() == 2
    assert "resumed after record 3" in dataset_import.events.values_list("note", flat=True)


def test_unreadable_image_bytes_skip_the_record_with_the_image_imports_reason(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"not an image at all")
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"image": "bad.png", "conversations": turns(("Q?", "Yes"))}]))
    result = import_dataset(
        data, format="llava", domain=Domain.objects.get(slug="ocr"), name="x", images=folder
    )
    assert result.summary["skipped"][0]["reason"] == "image 'bad.png': not an image Pillow can read"
    assert not Instruction.objects.exists()


def test_the_digest_written_with_the_row_is_the_one_the_database_computes(tmp_path):
    """Options with quotes, backslashes and non-ASCII text: the Python digest matches PostgreSQL's."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(41))
    question = 'Which one?\nA. the "big" one\nB. back\\slash\nC. café 漢字'
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"image": "a.png", "conversations": turns((question, "C"))}]))
    result = import_dataset(
        data, format="llava", domain=Domain.objects.get(slug="ocr"), name="x", images=folder
    )
    instruction = Instruction.objects.get(dataset_import=result)
    assert instruction.options == ['the "big" one', "back\\slash", "café 漢字"]
    assert instruction.checked_digest == instruction.content_digest


# --- the page, the API and the worker ---------------------------------------------------------------


def llava_upload(name="set.json") -> SimpleUploadedFile:
    rows = [{"id": "u1", "image": "img-0.png", "conversations": turns(("Is it a gradient?", "Yes"))}]
    rows.append({"id": "u2", "image": "img-9.png", "conversations": turns(("Q?", "Yes"))})
    return SimpleUploadedFile(name, json.dumps(rows).encode(), content_type="application/json")


def zip_upload() -> SimpleUploadedFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("img-0.png", png_bytes(811))
    return SimpleUploadedFile("images.zip", buf.getvalue(), content_type="application/zip")


def test_the_page_stages_an_upload_a_worker_imports_it_and_the_page_shows_the_summary(
    client, admin_user, settings, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            "/datasets/import/",
            {
                "data": llava_upload(),
                "images": zip_upload(),
                "format": "llava",
                "domain": "ocr",
                "status": "draft",
            },
        )
    staged = DatasetImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/datasets/import/{staged.pk}/"
    assert len(queued) == 1 and staged.status == ImportBatchStatus.QUEUED and staged.name == "set.json"
    folder = Path(settings.IMPORT_STAGING_ROOT) / "datasets" / str(staged.pk)
    assert sorted(p.name for p in folder.iterdir()) == ["data", "images.zip"]
    assert 'hx-trigger="every 2s"' in client.get(f"/datasets/import/{staged.pk}/").content.decode()

    import_dataset_task(staged.pk)  # what the worker runs

    staged.refresh_from_db()
    assert staged.status == ImportBatchStatus.DONE and not folder.exists()
    page = client.get(f"/datasets/import/{staged.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert 'class="n-imported">1<' in page and "hx-trigger" not in page
    assert "img-9.png" in page and "not found in the zip" in page


def test_the_page_refuses_a_bad_form_with_reasons_and_stages_nothing(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/datasets/import/",
        {"data": llava_upload(), "images": llava_upload("x.zip"), "format": "csv", "domain": "nope"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Must be a .zip archive" in page and "Select a valid choice" in page
    assert not DatasetImport.objects.exists()


def test_the_api_queues_an_import_and_answers_202_then_shows_its_summary(admin_user):
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post(
        "/api/v1/dataset-imports/",
        {
            "data": llava_upload(),
            "images": zip_upload(),
            "format": "llava",
            "domain": "ocr",
            "name": "api-set",
        },
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["name"] == "api-set"
    import_dataset_task(body["id"])
    done = api.get(f"/api/v1/dataset-imports/{body['id']}/").json()
    assert done["status"] == "done" and done["summary"]["imported_records"] == 1
    assert done["summary"]["skipped"][0]["record"] == 2


def test_the_api_refuses_bad_input_with_each_field_named(admin_user):
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post(
        "/api/v1/dataset-imports/", {"format": "csv", "domain": "nope", "name": "a\x00b"}, format="multipart"
    )
    assert response.status_code == 400
    assert {"data", "format", "domain", "name"} <= set(response.json()["errors"])
    assert not DatasetImport.objects.exists()


def test_the_sweep_fails_an_abandoned_import_and_removes_its_staged_files(admin_user, settings):
    staged = stage_dataset_upload(llava_upload(), format="llava", domain=Domain.objects.get(slug="ocr"))
    folder = Path(settings.IMPORT_STAGING_ROOT) / "datasets" / str(staged.pk)
    assert folder.exists()
    later = timezone.now() + datetime.timedelta(seconds=settings.IMPORT_ABANDONED_SECONDS + 1)
    assert sweep_dataset_imports(now=later) == [staged.pk]
    staged.refresh_from_db()
    assert staged.status == ImportBatchStatus.FAILED and "abandoned" in staged.error
    assert not folder.exists()
    assert run_dataset_import(staged.pk) is None


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_a_staged_upload(workers, admin_user):
    workers.start("datasets")
    # A transactional test runs after others flushed the tables: the migrations' domains may be gone.
    domain = Domain.objects.get_or_create(slug="datasets-worker", defaults={"name": "Datasets worker"})[0]
    staged = stage_dataset_upload(llava_upload(), images_upload=zip_upload(), format="llava", domain=domain)

    def finished():
        staged.refresh_from_db()
        return staged.is_finished

    wait_for(finished, 60, "the worker to finish the dataset import", interval=0.5)
    assert staged.status == ImportBatchStatus.DONE, workers.log("datasets")[-3000:]
    assert Instruction.objects.filter(dataset_import_id=staged.pk, origin=Origin.IMPORTED).count() == 1


def test_the_list_endpoint_has_no_n_plus_one(admin_user, django_assert_max_num_queries):
    for _ in range(4):
        stage_dataset_upload(llava_upload(), format="llava", domain=Domain.objects.get(slug="ocr"))
    api = APIClient()
    api.force_authenticate(admin_user)
    with django_assert_max_num_queries(5):
        assert len(api.get("/api/v1/dataset-imports/").json()["results"]) == 4


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_batches_are_written_by_writer_threads_in_file_order(tmp_path, monkeypatch):
    from corpus.services import dataset_import as service

    monkeypatch.setattr(service, "BATCH_RECORDS", 3)
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(51))
    rows = [{"id": f"r{n}", "image": "a.png", "conversations": turns(("Q?", "Yes"))} for n in range(10)]
    rows[4]["conversations"] = []
    data = tmp_path / "data.json"
    data.write_text(json.dumps(rows))
    domain = Domain.objects.get_or_create(slug="datasets-thread", defaults={"name": "Datasets thread"})[0]
    result = import_dataset(data, format="llava", domain=domain, name="t", images=folder)
    assert result.status == ImportBatchStatus.DONE and result.records_done == 10
    assert result.summary["imported_records"] == 9 and result.summary["skipped"][0]["record"] == 5
    ids = list(Instruction.objects.order_by("id").values_list("source_record", flat=True))
    assert ids == [f"r{n}" for n in range(10) if n != 4]


def test_a_flagged_turn_shows_its_reason_on_the_review_page(tmp_path, annotator, client):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(61))
    answer = "a long rambling answer with many words and no full stop at the end"
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"image": "a.png", "conversations": turns(("Describe it", answer))}]))
    domain = Domain.objects.get(slug="ocr")
    import_dataset(data, format="llava", domain=domain, name="x", images=folder)
    held = claim_next_image(annotator, domain_ids=[domain.pk])
    client.force_login(annotator)
    page = client.get(f"/review/image/{held}/").content.decode()
    assert 'class="reason needs-person">imported: fits no instruction type' in page


def test_the_command_can_queue_the_import_for_a_worker(
    llava_with_zip, capsys, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        call_command(
            "import_dataset",
            str(llava_with_zip["data"]),
            "--format=llava",
            "--domain=ocr",
            f"--images={llava_with_zip['images']}",
            "--background",
        )
    queued_import = DatasetImport.objects.get()
    assert f"/datasets/import/{queued_import.pk}/" in capsys.readouterr().out
    assert len(queued) == 1 and queued_import.status == ImportBatchStatus.QUEUED
    import_dataset_task(queued_import.pk)  # what the worker runs
    queued_import.refresh_from_db()
    assert queued_import.status == ImportBatchStatus.DONE and queued_import.summary["imported_records"] == 997


def test_text_that_cannot_be_stored_is_kept_flagged_with_a_replacement_character(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(71))
    data = tmp_path / "data.json"
    # A lone surrogate and a NUL, as JSON escapes write them.
    data.write_text(
        '[{"id": "x\\u0000y", "image": "a.png", "conversations": ['
        '{"from": "human", "value": "What is \\ud800 this?"}, {"from": "gpt", "value": "a c\\u0000t"}]}]'
    )
    result = import_dataset(
        data, format="llava", domain=Domain.objects.get(slug="ocr"), name="x", images=folder
    )
    assert result.status == ImportBatchStatus.DONE and result.summary["imported_records"] == 1
    instruction = Instruction.objects.get(dataset_import=result)
    assert (instruction.question, instruction.answer) == ("What is \ufffd this?", "a c\ufffdt")
    assert instruction.source_record == "x\ufffdy" and instruction.reason.startswith("imported: fits no")


def test_a_skipped_record_whose_id_holds_a_nul_is_named_in_the_summary(tmp_path):
    data = tmp_path / "data.json"
    data.write_text('[{"id": "bad\\u0000id", "image": "a.png", "conversations": []}]')
    result = import_dataset(data, format="llava", domain=Domain.objects.get(slug="ocr"), name="x")
    assert result.status == ImportBatchStatus.DONE
    assert result.summary["skipped"] == [{"record": 1, "line": 1, "id": "bad\ufffdid", "reason": "no turns"}]


def test_records_without_an_image_or_with_several_are_skipped_with_the_reason(tmp_path):
    data = tmp_path / "data.jsonl"
    rows = [
        {"id": "text-only", "conversations": turns(("Q?", "Yes"))},
        {"id": "two", "image": ["a.png", "b.png"], "conversations": turns(("Q?", "Yes"))},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    result = import_dataset(data, format="sharegpt", domain=Domain.objects.get(slug="ocr"), name="x")
    reasons = {s["id"]: s["reason"] for s in result.summary["skipped"]}
    assert reasons == {
        "text-only": "no image (records without one are not imported)",
        "two": "2 images in one record; only single-image records are imported",
    }


def _planted_checks_file(tmp_path) -> Path:
    """Image a: two Judgement turns both answered Yes (unbalanced); image b: one Yes, one No, with other
    questions (clean)."""
    (tmp_path / "a.png").write_bytes(png_bytes(31_001))
    (tmp_path / "b.png").write_bytes(png_bytes(31_002))
    records = [
        {"id": "a-1", "image": "a.png", "conversations": turns(("Is the square red?", "Yes"))},
        {"id": "a-2", "image": "a.png", "conversations": turns(("Is there a circle in the corner?", "Yes"))},
        {"id": "b-1", "image": "b.png", "conversations": turns(("Is the background white?", "Yes"))},
        {"id": "b-2", "image": "b.png", "conversations": turns(("Is any text printed on it?", "No"))},
    ]
    data = tmp_path / "planted.json"
    data.write_text(json.dumps(records))
    return data


def _flags_by_record(dataset_import) -> dict[str, set[str]]:
    return {
        i.source_record: {f.code for f in i.flags.all()}
        for i in Instruction.objects.filter(dataset_import=dataset_import).prefetch_related("flags")
    }


def test_the_command_runs_the_automatic_checks_on_the_imported_turns(tmp_path, capsys):
    data = _planted_checks_file(tmp_path)
    call_command("import_dataset", str(data), "--format", "llava", "--domain", "ocr", "--no-progress")
    assert "automatic checks: 2 images" in capsys.readouterr().out
    flags = _flags_by_record(DatasetImport.objects.get())
    assert flags["a-1"] == flags["a-2"] == {"judgement_unbalanced"}
    assert flags["b-1"] == flags["b-2"] == set()
    assert Image.objects.get(original_name="a.png").n_flags == 2


def test_the_worker_task_runs_the_automatic_checks_after_the_import(tmp_path):
    data = _planted_checks_file(tmp_path)
    staged = create_import(
        data_file=str(data),
        format="llava",
        domain=Domain.objects.get(slug="ocr"),
        name="planted",
        images=str(tmp_path),
    )
    import_dataset_task(staged.pk)  # what the worker runs
    flags = _flags_by_record(staged)
    assert flags["a-1"] == {"judgement_unbalanced"} and flags["b-1"] == set()
    import_dataset_task(staged.pk)  # a redelivery: the import is left alone, the checks store nothing new
    assert _flags_by_record(staged) == flags
