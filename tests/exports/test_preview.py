"""The export form's live preview (GET /api/v1/exports/preview/): counts of what a selection matches and
a sample of records, before anything is built; and a rebuild identical to an earlier version says so."""

import pytest
from rest_framework.test import APIClient

from exports.models import ExportVersion

from .conftest import build

pytestmark = pytest.mark.django_db
URL = "/api/v1/exports/preview/"


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_preview_counts_the_selected_instructions_and_images(corpus, researcher):
    # Accepted rows of one domain: 3 images × 4 accepted, plus the accepted one that breaks the rules.
    response = api(researcher).get(URL, {"domains": ["animals"]})
    assert response.status_code == 200
    body = response.json()
    assert (body["instructions"], body["images"]) == (13, 3)
    assert len(body["sample"]) == 5
    assert {r["domain"] for r in body["sample"]} == {"animals"}
    assert set(body["sample"][0]) >= {"instruction_id", "type", "question", "options", "answer", "image_id"}


def test_preview_follows_types_and_statuses(corpus, researcher):
    body = api(researcher).get(URL, {"types": ["judgement"], "statuses": ["rejected"]}).json()
    assert (body["instructions"], body["images"]) == (6, 6)


def test_preview_of_a_bad_field_is_a_400_naming_it(corpus, researcher):
    response = api(researcher).get(URL, {"domains": ["nowhere"], "types": ["poem"]})
    assert response.status_code == 400
    body = response.json()
    assert "detail" in body and set(body["errors"]) == {"domains", "types"}


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_preview_is_refused_to_roles_that_do_not_read_exports(corpus, request, who):
    assert api(request.getfixturevalue(who)).get(URL).status_code == 403


def test_preview_of_an_empty_corpus_is_zero(researcher):
    body = api(researcher).get(URL).json()
    assert body == {"instructions": 0, "images": 0, "sample": []}


def test_a_rebuild_with_nothing_new_says_it_is_identical(client, corpus, make_spec, researcher):
    spec = make_spec(formats=["llava"])
    v1, v2 = build(spec), build(spec)
    assert v1.sha256 == v2.sha256
    client.force_login(researcher)
    page = client.get(f"/exports/versions/{v2.pk}/").content.decode()
    assert "identical to" in page and f"/exports/versions/{v1.pk}/" in page
    assert "identical to" not in client.get(f"/exports/versions/{v1.pk}/").content.decode()
    assert ExportVersion.objects.count() == 2
