"""Benchmark of the review sweep's second-pass safety net (review.services.second_pass.sample_missed),
which Celery beat runs every SWEEP_INTERVAL (30 s) inside `review.sweep`.

    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE mmi_bench_sweep"
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mmi_bench_sweep .venv/bin/python bench/review_sweep.py

Seeds (INSERT … SELECT generate_series, no ORM) N reviewed images with an accepted caption, three events
each (claimed, opened, all drafts decided → reviewed, by a person), and the second passes of the images in
the 10% share — computed in SQL with the same hash as second_pass.is_sampled, which the steady-state run
cross-checks (it must find nothing to make). Then it times, per size:
  steady — sample_missed() with every sample in place (what every sweep costs);
  recover — after deleting 50 recent samples, the run that makes them again.
Prints p50/p95 over 20 steady runs and the recovery time, with the load average beside them.
"""

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mminstruct_site.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mmi_bench_sweep")
os.environ.setdefault("DEBUG", "true")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from review.services import second_pass  # noqa: E402

SHARE = 0.1
IN_SHARE_SQL = (
    "('x' || substr(encode(sha256(('second-pass:' || {id})::bytea), 'hex'), 1, 8))::bit(32)::bigint"
    " / 4294967296.0 < %(share)s"
)


def seed(images: int, user_id: int) -> float:
    started = time.perf_counter()
    with connection.cursor() as c:
        c.execute(
            "TRUNCATE corpus_image, corpus_caption, corpus_imageevent, review_secondpass, "
            "review_secondpassevent RESTART IDENTITY CASCADE"
        )
        c.execute(
            "INSERT INTO corpus_domain (name, slug, description, guidelines, is_active, ocr_enabled) "
            "VALUES ('Bench', 'bench', '', '', true, false) ON CONFLICT DO NOTHING"
        )
        c.execute("SELECT id FROM corpus_domain WHERE slug = 'bench'")
        domain = c.fetchone()[0]
        c.execute(
            """
            INSERT INTO corpus_image (file, thumbnail, original_name, sha256, phash, width, height, format,
                domain_id, source, license, prior_knowledge, ocr_text, is_sample, imported_at, review_status)
            SELECT 'images/bench.png', '', 'bench-' || g || '.png', md5(g::text) || md5((-g)::text), '', 640,
                480, 'PNG', %(domain)s, 'bench', 'CC0', '', '', false, now(), 'reviewed'
            FROM generate_series(1, %(n)s) AS g
            """,
            {"domain": domain, "n": images},
        )
        c.execute(
            """
            INSERT INTO corpus_caption (image_id, status, origin, model_name, version, reason, created_at,
                updated_at, text, tokens_in, tokens_out, latency_ms, cost)
            SELECT id, 'accepted', 'model', 'bench', 2, '', now(), now(), 'A red kettle on a stove.', 0, 0, 0, 0
            FROM corpus_image
            """
        )
        c.execute(
            """
            INSERT INTO corpus_imageevent (image_id, from_status, to_status, actor_id, at, note)
            SELECT i.id, e.f, e.t, %(user)s, now(), e.note
            FROM corpus_image i, (VALUES (1, 'pending', 'in_review', 'claimed'),
                (2, 'in_review', 'in_review', 'opened'),
                (3, 'in_review', 'reviewed', 'all drafts decided')) AS e(k, f, t, note)
            ORDER BY i.id, e.k
            """,
            {"user": user_id},
        )
        c.execute(
            f"""
            INSERT INTO review_secondpass (image_id, first_reviewer_id, status, created_at)
            SELECT id, %(user)s, 'pending', now() FROM corpus_image WHERE {IN_SHARE_SQL.format(id="id")}
            """,
            {"user": user_id, "share": SHARE},
        )
        c.execute("ANALYZE corpus_image, corpus_caption, corpus_imageevent, review_secondpass")
    return time.perf_counter() - started


def main() -> None:
    call_command("migrate", verbosity=0)
    settings.REVIEW_SECOND_PASS_SHARE = SHARE
    user, _ = User.objects.get_or_create(username="bench-annotator")
    for images in (10_000, 1_000_000):
        took = seed(images, user.pk)
        print(f"{images:>9,} images, {3 * images:,} events: seeded in {took:.1f} s")
        found = second_pass.sample_missed()
        assert found == 0, f"the SQL share and is_sampled disagree: {found} samples made"
        runs = []
        for _ in range(20):
            started = time.perf_counter()
            second_pass.sample_missed()
            runs.append((time.perf_counter() - started) * 1000)
        load = os.getloadavg()[0]
        p95 = statistics.quantiles(runs, n=20)[18]
        print(f"  steady:  p50 {statistics.median(runs):.1f} ms, p95 {p95:.1f} ms   (load {load:.2f})")
        with connection.cursor() as c:
            c.execute(
                "DELETE FROM review_secondpass WHERE id IN "
                "(SELECT id FROM review_secondpass ORDER BY image_id DESC LIMIT 50)"
            )
        started = time.perf_counter()
        made = second_pass.sample_missed()
        took = (time.perf_counter() - started) * 1000
        print(f"  recover: {made} samples made in {took:.1f} ms   (load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
