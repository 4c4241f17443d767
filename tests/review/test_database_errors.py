"""A database that fails under a review action (busy, locked, gone) reaches the person as a message with a
retry — 503 with Retry-After on the API, a "Try again" page for plain forms, a plain-text message the
page's script shows for htmx — and nothing is half-written. The failure is a real one: a trigger makes
PostgreSQL refuse the write with lock_not_available, as a lock timeout would."""

import pytest
from django.db import connection
from django.urls import reverse

from corpus.models import Caption, ImageEvent, Revision
from review.services.queue import claim_next_image
from tests.review.test_api import save_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_trigger_left(postgres):
    yield
    with connection.cursor() as cursor:
        for table in ("corpus_caption", "corpus_imageevent"):
            cursor.execute(f"DROP TRIGGER IF EXISTS mmi_test_refuse ON {table}")


def fail_writes_to(table: str):
    """Every UPDATE or INSERT on `table` fails as a lock timeout does, until the returned undo runs."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION mmi_test_refuse() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'could not obtain lock (test)' USING ERRCODE = 'lock_not_available'; END $$ "
            "LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER mmi_test_refuse BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION mmi_test_refuse()"
        )

    def undo():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER mmi_test_refuse ON {table}")

    return undo


# transaction=True: as in a request, the save's one write statement runs on its own (no transaction of the
# test's around it, which the refused statement would abort).
@pytest.mark.django_db(transaction=True)
def test_an_api_save_the_database_refuses_is_503_with_retry_after_and_writes_nothing(
    postgres, client, annotator, pending_image
):
    claim_next_image(annotator)
    client.force_login(annotator)
    caption = pending_image.captions.get()
    undo = fail_writes_to("corpus_caption")
    response = client.post(
        save_url("caption", caption.pk),
        {"expected_version": 1, "changes": {"text": "Edited."}, "status": "accepted"},
        content_type="application/json",
    )
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert "nothing was written" in response.json()["detail"]
    assert Caption.objects.get(pk=caption.pk).version == 1 and not Revision.objects.exists()
    undo()
    retried = client.post(
        save_url("caption", caption.pk),
        {"expected_version": 1, "changes": {"text": "Edited."}, "status": "accepted"},
        content_type="application/json",
    )
    assert retried.status_code == 200 and retried.json()["version"] == 2


@pytest.mark.django_db(transaction=True)
def test_an_htmx_save_the_database_refuses_answers_a_plain_message_to_show(
    postgres, client, annotator, pending_image
):
    claim_next_image(annotator)
    client.force_login(annotator)
    caption = pending_image.captions.get()
    fail_writes_to("corpus_caption")
    response = client.post(
        reverse("review:save", args=["caption", caption.pk]),
        {"expected_version": 1, "action": "accept", "text": caption.text},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 503 and response["Content-Type"].startswith("text/plain")
    assert "nothing was saved" in response.content.decode()
    assert Caption.objects.get(pk=caption.pk).version == 1


# The claim is one statement outside any transaction in a request; only a transactional test sees that.
@pytest.mark.django_db(transaction=True)
def test_next_image_the_database_refuses_offers_try_again_with_the_same_form(
    postgres, client, annotator, pending_image
):
    client.force_login(annotator)
    undo = fail_writes_to("corpus_imageevent")
    response = client.post(reverse("review:next"))
    assert response.status_code == 503
    html = response.content.decode()
    assert "nothing was saved" in html and 'action="/review/next/"' in html and "Try again" in html
    assert not ImageEvent.objects.exists()
    pending_image.refresh_from_db()
    assert pending_image.leased_by is None  # the claim's swap was rolled back with its event
    undo()
    again = client.post(reverse("review:next"))
    assert again.status_code == 302 and again.url == reverse("review:image", args=[pending_image.pk])
