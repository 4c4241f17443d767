"""The Django admin names every model in correct English: "Import batches", not "Import batchs"."""

import re

import pytest
from django.apps import apps

pytestmark = pytest.mark.django_db
PROJECT_APPS = {"corpus", "generation", "review", "exports"}


def test_no_model_is_pluralised_by_a_bare_s_after_s_x_ch_or_sh():
    wrong = [
        f"{m._meta.label}: {m._meta.verbose_name_plural}"
        for m in apps.get_models()
        if m._meta.app_label in PROJECT_APPS
        and re.search(r"(s|x|ch|sh)$", str(m._meta.verbose_name))
        and str(m._meta.verbose_name_plural) == f"{m._meta.verbose_name}s"
    ]
    assert not wrong


def test_the_admin_index_says_import_batches_and_second_passes(client, admin_user):
    client.force_login(admin_user)
    html = client.get("/django-admin/").content.decode()
    assert "Import batches" in html and "Second passes" in html
    assert "batchs" not in html and "passs" not in html


def test_a_dialogue_is_in_the_admin_with_its_turns_in_order_and_escaped(client, admin_user):
    from corpus.services.conversations import create_conversation
    from tests.corpus.factories import ImageFactory

    turns = [
        {"type": "short_vqa", "question": "What is <b>on</b> the plate?", "options": [], "answer": "apples"},
        {"type": "judgement", "question": "Are there two apples?", "options": [], "answer": "Yes"},
    ]
    conversation = create_conversation(ImageFactory(), turns=turns, model_name="fake/model")
    client.force_login(admin_user)
    assert "Conversations" in client.get("/django-admin/").content.decode()
    listing = client.get("/django-admin/corpus/conversation/")
    assert (
        listing.status_code == 200
        and f"/corpus/conversation/{conversation.pk}/change/" in listing.content.decode()
    )
    html = client.get(f"/django-admin/corpus/conversation/{conversation.pk}/change/").content.decode()
    assert html.index("What is &lt;b&gt;on&lt;/b&gt; the plate?") < html.index("Are there two apples?")
    assert "<b>on</b>" not in html
    # Read-only: no change, no delete (it would cascade to the turns).
    assert f'name="image" value="{conversation.image_id}"' not in html
    delete = client.post(f"/django-admin/corpus/conversation/{conversation.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert conversation.turns.count() == 2
