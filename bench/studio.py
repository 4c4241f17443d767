"""Benchmark of the home pages' reads (studio.selectors and the export preview) at two corpus sizes.

    createdb -h 127.0.0.1 -U postgres mmi_bench_studio
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mmi_bench_studio DEBUG=true .venv/bin/python bench/studio.py

For each size (10,000 and 200,000 images in 10 domains; each image one caption and four instructions,
in the states a working corpus has: a tenth without drafts, a fifth pending, the rest reviewed and
accepted) the corpus tables are emptied and seeded with INSERT … SELECT generate_series (no ORM), then
ANALYZEd, and each read is timed (median of 5, its cache emptied first): the admin's funnel (one grouped
query), the researcher's "ready to export" and the export form's live preview (counts and a sample) for
one domain and for all.
Prints the figures with the load average beside them (the machine is shared).
"""

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mminstruct_site.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")

import django  # noqa: E402

django.setup()

from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from exports.selectors import preview_selection  # noqa: E402
from studio import selectors  # noqa: E402

SIZES = (10_000, 200_000)


def seed(n: int) -> None:
    with connection.cursor() as c:
        c.execute(
            "TRUNCATE corpus_instruction, corpus_caption, corpus_revision, corpus_image RESTART IDENTITY CASCADE"
        )
        c.execute("SELECT id FROM corpus_domain WHERE is_active ORDER BY id LIMIT 10")
        domains = [r[0] for r in c.fetchall()]
        c.execute(
            """
            INSERT INTO corpus_image (original_name, sha256, phash, width, height, format, domain_id, file,
                thumbnail, source, license, prior_knowledge, ocr_text, is_sample, imported_at, review_status)
            SELECT 'img-' || g || '.png', md5(g::text) || md5((g + 1)::text), '', 32, 24, 'PNG',
                   (%s::int[])[1 + g %% %s], 'images/x/' || g || '.png', '', 'bench', 'CC0', '', '', false,
                   now(),
                   CASE WHEN g %% 10 = 0 THEN 'new' WHEN g %% 5 = 1 THEN 'pending' ELSE 'reviewed' END
            FROM generate_series(1, %s) g
            """,
            [domains, len(domains), n],
        )
        c.execute(
            """
            INSERT INTO corpus_caption (image_id, text, status, origin, model_name, version, created_at,
                updated_at, tokens_in, tokens_out, latency_ms, cost, reason)
            SELECT id, 'A caption of image ' || id || '.',
                   CASE WHEN review_status = 'reviewed' THEN 'accepted' ELSE 'draft' END, 'model', 'bench', 1,
                   now(), now(), 0, 0, 0, 0, ''
            FROM corpus_image WHERE review_status <> 'new'
            """
        )
        c.execute(
            """
            INSERT INTO corpus_instruction (image_id, type, question, options, answer, status, origin,
                model_name, version, created_at, updated_at, reason)
            SELECT i.id, t.type, 'Question ' || t.type || ' ' || i.id || '?', '[]', 'answer',
                   CASE WHEN i.review_status = 'reviewed' THEN 'accepted' ELSE 'draft' END, 'model', 'bench',
                   1, now(), now(), ''
            FROM corpus_image i
            CROSS JOIN (VALUES ('judgement'), ('short_vqa'), ('long_vqa'), ('multiple_choice')) AS t(type)
            WHERE i.review_status <> 'new'
            """
        )
        c.execute("ANALYZE corpus_image; ANALYZE corpus_caption; ANALYZE corpus_instruction")


def timed(fn, rounds: int = 5) -> float:
    fn()  # warm
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    call_command("migrate", verbosity=0)
    with connection.cursor() as c:
        c.execute("SELECT slug FROM corpus_domain WHERE is_active ORDER BY id LIMIT 1")
        one = c.fetchone()[0]
    for n in SIZES:
        seed(n)
        # Uncached: the figure is what the first visitor after FUNNEL_CACHE_SECONDS waits.
        figures = {
            "funnel (admin home)": timed(
                lambda: (cache.delete(selectors.FUNNEL_CACHE_KEY), selectors.funnel())
            ),
            "ready to export (researcher home)": timed(
                lambda: (cache.delete(selectors.READY_CACHE_KEY), selectors.ready_to_export())
            ),
            "export preview, one domain": timed(lambda: preview_selection({"domains": [one]})),
            "export preview, every domain": timed(lambda: preview_selection({})),
        }
        load = os.getloadavg()[0]
        for name, seconds in figures.items():
            print(f"{n:>8} images  {name:<36} {seconds * 1000:8.1f} ms   (load average {load:.1f})")


if __name__ == "__main__":
    main()
