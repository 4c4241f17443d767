"""The claim must use its partial index at scale; a planner-cost change that brings back a scan fails
here, not in production."""

import pytest
from django.db import connection

from corpus.services.review_state import _PG_CLAIM_SQL, PG_PICK_SQL
from tests.corpus.factories import DomainFactory

pytestmark = pytest.mark.django_db


def _seed(domains, n):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO corpus_image (file, thumbnail, original_name, sha256, phash, width, height, format,
                domain_id, source, license, prior_knowledge, ocr_text, is_sample, imported_at, review_status)
            SELECT 'images/x.png', '', 'x.png', md5(g::text) || md5((g + 1)::text), '', 1, 1, 'PNG',
                (%s::bigint[])[1 + g %% %s], '', '', '', '', false, now(),
                CASE WHEN g %% 3 = 0 THEN 'pending' WHEN g %% 3 = 1 THEN 'reviewed' ELSE 'new' END
            FROM generate_series(1, %s) AS g
            """,
            [[d.pk for d in domains], len(domains), n],
        )
        cursor.execute("ANALYZE corpus_image")


@pytest.mark.parametrize("random_page_cost", ["1.1", "4"])
def test_claim_plan_uses_the_pending_index(postgres, random_page_cost):
    domains = [DomainFactory() for _ in range(4)]
    _seed(domains, 30_000)
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL random_page_cost = {random_page_cost}")
        cursor.execute("EXPLAIN " + PG_PICK_SQL, [[d.pk for d in domains]])
        pick_plan = "\n".join(r[0] for r in cursor.fetchall())
        cursor.execute(
            "EXPLAIN " + _PG_CLAIM_SQL,
            {"domains": [d.pk for d in domains], "user": 1, "secs": 900},
        )
        claim_plan = "\n".join(r[0] for r in cursor.fetchall())
        # No domains chosen: the statement reads the active domains itself.
        cursor.execute(
            "EXPLAIN " + _PG_CLAIM_SQL,
            {"domains": None, "user": 1, "secs": 900},
        )
        all_domains_plan = "\n".join(r[0] for r in cursor.fetchall())
    assert "review_claim_idx" in pick_plan, pick_plan
    assert "Seq Scan on corpus_image" not in pick_plan, pick_plan
    assert "review_claim_idx" in claim_plan and "image_lease_expiry_idx" in claim_plan, claim_plan
    assert "review_claim_idx" in all_domains_plan, all_domains_plan
