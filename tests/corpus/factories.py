"""Factories for the corpus rows. Images are real, tiny PNGs whose bytes differ per sequence number."""

import hashlib
import io

import factory
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from corpus.models import Caption, Domain, Image, Instruction, ItemStatus, Origin
from corpus.rules import InstructionType


def png_bytes(n: int, size: tuple[int, int] = (32, 24)) -> bytes:
    """A small PNG that is different for every n (a gradient keyed on n)."""
    img = PILImage.new("RGB", size)
    w, h = size
    img.putdata(
        [
            ((x * 7 + n) % 256, (y * 11 + n // 256) % 256, (x * y + n * 13) % 256)
            for y in range(h)
            for x in range(w)
        ]
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class DomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Domain
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Test Domain {n}")
    slug = factory.Sequence(lambda n: f"test-domain-{n}")
    description = "A domain made for a test."
    guidelines = "Check everything against the picture."


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    class Params:
        content = factory.Sequence(png_bytes)

    domain = factory.SubFactory(DomainFactory)
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.content).hexdigest())
    format = "PNG"
    original_name = factory.Sequence(lambda n: f"image-{n}.png")
    file = factory.LazyAttribute(lambda o: ContentFile(o.content, name=o.original_name))
    source = "generated for a test"
    license = "CC0"


class CaptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Caption

    image = factory.SubFactory(ImageFactory)
    text = "A small test image with a colour gradient running from the top left corner to the bottom right."
    status = ItemStatus.DRAFT
    origin = Origin.MODEL
    model_name = "test-vision-model"
    prompt_version = 1


class InstructionFactory(factory.django.DjangoModelFactory):
    """A valid instruction of any type; pass type=… for the others (defaults fit Short VQA)."""

    class Meta:
        model = Instruction

    image = factory.SubFactory(ImageFactory)
    type = InstructionType.SHORT_VQA
    question = factory.Sequence(lambda n: f"What colour is the corner {n}?")
    options = factory.LazyAttribute(
        lambda o: ["red", "green", "blue", "black"] if o.type == InstructionType.MULTIPLE_CHOICE else []
    )
    answer = factory.LazyAttribute(
        lambda o: {
            InstructionType.JUDGEMENT: "Yes",
            InstructionType.MULTIPLE_CHOICE: "B",
            InstructionType.LONG_VQA: "The top left corner of the image is a dark green colour.",
            InstructionType.SHORT_VQA: "green",
        }[o.type]
    )
    status = ItemStatus.DRAFT
    origin = Origin.MODEL
    model_name = "test-text-model"
    prompt_version = 1
