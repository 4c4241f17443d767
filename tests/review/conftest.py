"""Review fixtures: images waiting in the queue with a caption and instructions of each type."""

import pytest

from corpus.models import ReviewStatus
from corpus.rules import InstructionType
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory


def make_pending_image(
    domain=None, *, types=(InstructionType.MULTIPLE_CHOICE, InstructionType.SHORT_VQA), **kw
):
    """An image in the queue with a draft caption and one draft instruction per type in `types`."""
    image = ImageFactory(review_status=ReviewStatus.PENDING, **({"domain": domain} if domain else {}), **kw)
    caption = CaptionFactory(image=image)
    for type_ in types:
        InstructionFactory(image=image, caption=caption, type=type_)
    return image


@pytest.fixture
def domain():
    return DomainFactory()


@pytest.fixture
def pending_image(domain):
    return make_pending_image(domain)
