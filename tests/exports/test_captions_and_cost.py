"""Captions as training data: a spec with include_captions adds each exported image's accepted caption as
a detailed-description record in every format, and the dataset card counts them; the card states what the
data cost when the ledger knows it."""

import io
import json
from datetime import timedelta
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from corpus.models import ItemStatus, Revision, RevisionAction
from generation.models import Endpoint, GenerationJob, GenerationUnit, PromptTemplate
from tests.corpus.factories import CaptionFactory

from .conftest import build, read_member

pytestmark = pytest.mark.django_db


def test_accepted_captions_are_detailed_description_records_in_every_format(corpus, make_spec):
    images = corpus["images"]
    CaptionFactory(image=images[0], status=ItemStatus.ACCEPTED, text="An older accepted caption.")
    newest = CaptionFactory(image=images[0], status=ItemStatus.ACCEPTED, text="The newest accepted caption.")
    CaptionFactory(image=images[1], status=ItemStatus.DRAFT, text="A draft: not exported.")
    accepted_elsewhere = CaptionFactory(image=images[2], status=ItemStatus.ACCEPTED, text="Caption two.")
    version = build(make_spec(include_captions=True, train_ratio=1.0))
    records = json.loads(read_member(version, "data/train.llava.json"))
    captions = [r for r in records if r["id"].startswith("caption-")]
    assert {r["id"] for r in captions} == {f"caption-{newest.pk}", f"caption-{accepted_elsewhere.pk}"}
    mine = next(r for r in captions if r["id"] == f"caption-{newest.pk}")
    assert mine["conversations"] == [
        {"from": "human", "value": "<image>\nDescribe this image in detail."},
        {"from": "gpt", "value": "The newest accepted caption."},
    ]
    sharegpt = [json.loads(line) for line in read_member(version, "data/train.sharegpt.jsonl").splitlines()]
    assert sum(1 for r in sharegpt if r["id"].startswith("caption-")) == 2
    table = pq.read_table(io.BytesIO(read_member(version, "data/train.parquet"))).to_pylist()
    rows = [r for r in table if r["id"].startswith("caption-")]
    assert (
        len(rows) == 2 and rows[0]["types"] == ["detailed_description"] and rows[0]["instruction_ids"] == []
    )
    manifest = json.loads(read_member(version, "manifest.json"))
    assert manifest["counts"]["captions"] == 2 and manifest["spec"]["include_captions"] is True
    assert manifest["counts"]["records"] == len(records)
    card = read_member(version, "README.md").decode()
    assert "Detailed-description records (each image's accepted caption): 2" in card


def test_without_the_option_no_caption_record_and_the_card_says_nothing_of_them(corpus, make_spec):
    CaptionFactory(image=corpus["images"][0], status=ItemStatus.ACCEPTED)
    version = build(make_spec(train_ratio=1.0))
    records = json.loads(read_member(version, "data/train.llava.json"))
    assert not any(r["id"].startswith("caption-") for r in records)
    assert "Detailed-description" not in read_member(version, "README.md").decode()
    assert "captions" not in json.loads(read_member(version, "manifest.json"))["counts"]


def test_the_card_states_what_the_data_cost(corpus, make_spec, annotator, settings):
    settings.COST_HOURLY_RATE_ANNOTATOR = 36
    image = corpus["images"][0]
    endpoint = Endpoint.objects.create(name="e1", kind="text", base_url="http://127.0.0.1:9/v1", model="m")
    prompt = PromptTemplate.objects.create(kind="caption", version=77, text="x", is_current=False)
    job = GenerationJob.objects.create(stage="instructions", endpoint=endpoint)
    GenerationUnit.objects.create(
        job=job, image=image, stage="instructions", instruction_type="short_vqa", prompt=prompt,
        endpoint=endpoint, status="done", cost=Decimal("1.20"), finished_at=timezone.now(),
    )  # fmt: skip
    item = image.instructions.filter(status=ItemStatus.ACCEPTED).first()
    now = timezone.now()
    for n, seconds in enumerate((0, 60)):  # one minute of a person's time: 0.60
        Revision.objects.create(
            instruction=item, version=10 + n, action=RevisionAction.ACCEPTED, by=annotator,
            at=now + timedelta(seconds=seconds), after={},
        )  # fmt: skip
    version = build(make_spec(train_ratio=1.0, selection={"domains": [image.domain.slug]}))
    manifest = json.loads(read_member(version, "manifest.json"))
    # The domain's ledger: 1.20 + 0.60 = 1.80 over its accepted instructions (3 images × 4 + the broken one).
    per = Decimal("1.80") / 13
    exported = manifest["counts"]["instructions"]
    assert manifest["cost"]["per_accepted_by_domain"] == {
        image.domain.slug: str(per.quantize(Decimal("0.0001")))
    }
    assert Decimal(manifest["cost"]["total"]) == (per.quantize(Decimal("0.0001")) * exported).quantize(
        Decimal("0.0001")
    )
    assert (
        f"What this data cost: {manifest['cost']['total']} USD" in read_member(version, "README.md").decode()
    )
