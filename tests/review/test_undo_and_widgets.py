"""The review page's server side of issue 13: undo takes a decision back to draft while the lease holds,
the item renders one widget per type, and saving one's domains says so."""

import re

import pytest

from corpus.models import ItemStatus
from corpus.rules import InstructionType as T
from review.services.corrections import save_item
from review.services.queue import take_image
from tests.corpus.factories import DomainFactory
from tests.review.conftest import make_pending_image

pytestmark = pytest.mark.django_db


def test_undo_takes_the_last_decision_back_to_draft(client, annotator):
    image = make_pending_image(DomainFactory(), types=(T.SHORT_VQA,))
    caption = image.captions.get()
    take_image(image.pk, annotator)
    save_item("caption", caption.pk, by=annotator, expected_version=1, status=ItemStatus.ACCEPTED)
    client.force_login(annotator)
    response = client.post(
        f"/review/item/caption/{caption.pk}/save/",
        {"action": "undo", "expected_version": 2, "text": caption.text},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    caption.refresh_from_db()
    assert (caption.status, caption.version) == (ItemStatus.DRAFT, 3)
    assert caption.revisions.order_by("-version").first().action == "reopened"


def test_undo_without_the_lease_is_refused_and_changes_nothing(client, annotator, second_annotator):
    image = make_pending_image(DomainFactory(), types=(T.SHORT_VQA,))
    caption = image.captions.get()
    take_image(image.pk, second_annotator)
    save_item("caption", caption.pk, by=second_annotator, expected_version=1, status=ItemStatus.ACCEPTED)
    client.force_login(annotator)
    response = client.post(
        f"/review/item/caption/{caption.pk}/save/",
        {"action": "undo", "expected_version": 2, "text": caption.text},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 409
    caption.refresh_from_db()
    assert (caption.status, caption.version) == (ItemStatus.ACCEPTED, 2)


def test_each_type_gets_its_widget_and_mcq_only_its_options(client, annotator):
    image = make_pending_image(DomainFactory(), types=(T.JUDGEMENT, T.MULTIPLE_CHOICE, T.LONG_VQA))
    take_image(image.pk, annotator)
    client.force_login(annotator)
    html = client.get(f"/review/image/{image.pk}/").content.decode()
    items = {i.type: i for i in image.instructions.all()}

    def article(item) -> str:
        return html.split(f'id="item-instruction-{item.pk}"', 1)[1].split("</article>", 1)[0]

    mcq = article(items[T.MULTIPLE_CHOICE])
    assert len(re.findall(r'name="options"', mcq)) == 4 and 'placeholder="option E"' not in mcq
    assert 'class="yn"' in article(
        items[T.JUDGEMENT]
    ) and 'aria-pressed="true" tabindex="-1">Yes (y)' in article(items[T.JUDGEMENT])
    assert re.search(r'<textarea name="answer"[^>]*long-answer', article(items[T.LONG_VQA]))


def test_saving_ones_domains_says_so(client, annotator):
    domain = DomainFactory(name="Moths")
    client.force_login(annotator)
    response = client.post("/review/", {"domains": [domain.pk]}, follow=True)
    assert "Saved: you review images of 1 domain." in response.content.decode()
