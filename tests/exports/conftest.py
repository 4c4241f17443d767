"""A small corpus of accepted instructions of every type over two domains, and helpers to build and
open export archives."""

import tarfile
from pathlib import Path

import pytest
from django.conf import settings

from corpus.models import ItemStatus
from corpus.rules import InstructionType
from exports.services.build import build_version, split_of
from exports.services.specs import allocate_version, create_spec
from tests.corpus.factories import DomainFactory, ImageFactory, InstructionFactory

T = InstructionType


@pytest.fixture
def corpus(db):
    """2 domains × 3 images; every image has accepted instructions of several types, plus a draft, a
    rejected one and one accepted item that breaks the rules now (the exporter must skip it)."""
    animals = DomainFactory(slug="animals", name="Animals")
    charts = DomainFactory(slug="charts", name="Charts")
    images = []
    for domain in (animals, charts):
        for _ in range(3):
            image = ImageFactory(domain=domain)
            images.append(image)
            InstructionFactory(image=image, type=T.SHORT_VQA, status=ItemStatus.ACCEPTED)
            InstructionFactory(image=image, type=T.MULTIPLE_CHOICE, status=ItemStatus.ACCEPTED)
            InstructionFactory(image=image, type=T.JUDGEMENT, status=ItemStatus.ACCEPTED)
            InstructionFactory(image=image, type=T.LONG_VQA, status=ItemStatus.ACCEPTED)
            InstructionFactory(image=image, type=T.SHORT_VQA, status=ItemStatus.DRAFT)
            InstructionFactory(image=image, type=T.JUDGEMENT, status=ItemStatus.REJECTED)
    # Written straight through the factory (not corpus.services), as a legacy row would be: accepted
    # but its answer is far too long for Short VQA.
    broken = InstructionFactory(
        image=images[0],
        type=T.SHORT_VQA,
        status=ItemStatus.ACCEPTED,
        answer="this answer is much too long to be a short answer to anything at all really",
    )
    # The images' hashes depend on the factory sequence, so pick (not hard-code) a seed that puts them
    # into both splits at a 0.5 ratio.
    seed = next(s for s in range(1000) if len({split_of(s, i.sha256, 0.5) for i in images}) == 2)
    return {"domains": [animals, charts], "images": images, "broken": broken, "seed": seed}


@pytest.fixture
def make_spec(researcher):
    def make(name="demo", **kwargs):
        kwargs.setdefault("formats", ["llava", "sharegpt", "parquet"])
        return create_spec(name, by=researcher, **kwargs)

    return make


def build(spec, by=None):
    """Allocate the next version of `spec` and build it here (the service the task calls)."""
    return build_version(allocate_version(spec, by=by), actor=by)


def archive_path(version) -> Path:
    return Path(settings.EXPORTS_ROOT) / version.file_path


def read_member(version, name: str) -> bytes:
    with tarfile.open(archive_path(version)) as tar:
        return tar.extractfile(name).read()


def member_names(version) -> list[str]:
    with tarfile.open(archive_path(version)) as tar:
        return tar.getnames()
