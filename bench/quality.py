"""What the automatic checks cost (corpus/services/quality.py):

1. per draft write: the time `check_image` adds to one instruction write (an image of 12 drafts of the four
   types, in a domain of --domain-size instructions), p50/p95/max over --writes writes — the bar is ≤ 2 ms
   at p95;
2. the near-duplicate lookup as the domain grows from 10k to 1M instructions (--sizes): the time of
   `duplicates_in_domain` for one item, p50/p95 over --lookups lookups at each size — it must stay flat
   (an index probe plus a bounded candidate set, not a scan).

    python bench/quality.py [--sizes 10000,100000,1000000] [--writes 500] [--lookups 500]

Uses its own PostgreSQL database (mmi_bench_quality, created if missing); rows are inserted with
generate_series (no files: the checks read no image). Prints `uptime` beside the figures: the machine is
shared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = "mmi_bench_quality"
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    DJANGO_SETTINGS_MODULE="mminstruct_site.settings",
)
os.environ.setdefault("DEBUG", "true")


def ensure_database() -> None:
    exists = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not exists:
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DB_NAME}"], check=True
        )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def load() -> str:
    return (
        subprocess.run(["uptime"], capture_output=True, text=True)
        .stdout.strip()
        .split("load average:")[-1]
        .strip()
    )


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def grow(domain_id: int, target: int, images_per: int = 10) -> None:
    """Grow the domain to `target` instructions: images of `images_per` short answers each, with distinct
    questions (keys) as corpus.services.quality would have stored them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM corpus_instruction i JOIN corpus_image im ON im.id = i.image_id "
            "WHERE im.domain_id = %s",
            [domain_id],
        )
        have = cursor.fetchone()[0]
        if have >= target:
            return
        start, n_images = have // images_per, (target - have) // images_per
        cursor.execute(
            "INSERT INTO corpus_image (file, thumbnail, original_name, sha256, phash, width, height, format, "
            "domain_id, source, license, prior_knowledge, ocr_text, is_sample, imported_at, review_status, "
            "n_flags) SELECT 'bench/' || g || '.png', '', '', md5('img' || g) || md5('x' || g), '', 1, 1, "
            "'PNG', %s, '', '', '', '', false, now(), 'pending', 0 FROM generate_series(%s, %s) AS g",
            [domain_id, start, start + n_images - 1],
        )
        # One distinct key per question, as the service stores them (md5 of the serial stands in for the
        # md5 of the content words: the lookup reads the key, not how it was made).
        cursor.execute(
            "INSERT INTO corpus_instruction (image_id, status, origin, model_name, prompt_version, "
            "generation_unit_id, version, reason, created_at, updated_at, type, question, options, answer, "
            "language, question_key, checked_quality) "
            "SELECT im.id, 'draft', 'model', 'bench', 1, NULL, 1, '', now(), now(), 'short_vqa', "
            "'What is in stripe ' || (im.id * 10 + k) || ' of the picture?', '[]'::jsonb, 'a stripe', 'en', "
            "md5('q' || (im.id * 10 + k)), 1 "
            "FROM corpus_image im CROSS JOIN generate_series(0, %s) AS k "
            "WHERE im.domain_id = %s AND im.original_name = '' AND im.file LIKE 'bench/%%' "
            "AND im.id > COALESCE((SELECT max(image_id) FROM corpus_instruction i2 "
            "JOIN corpus_image im2 ON im2.id = i2.image_id WHERE im2.domain_id = %s), 0)",
            [images_per - 1, domain_id, domain_id],
        )
        cursor.execute("ANALYZE corpus_instruction")
        cursor.execute("ANALYZE corpus_image")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--lookups", type=int, default=500)
    args = parser.parse_args()
    ensure_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from corpus.checks import Item, question_key
    from corpus.models import Caption, Domain, Image, Instruction
    from corpus.services import items as item_service
    from corpus.services import quality

    domain, _ = Domain.objects.get_or_create(slug="bench-quality", defaults={"name": "Bench quality"})
    user, _ = get_user_model().objects.get_or_create(username="bench-quality")
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average before: {load()}")
    rows = []
    for size in sizes:
        t0 = time.monotonic()
        grow(domain.pk, size)
        grown = time.monotonic() - t0
        keys = list(
            Instruction.objects.filter(image__domain=domain).order_by("?").values_list("id", "image_id", "question")[
                : args.lookups
            ]
        )  # fmt: skip
        lookups = []
        for pk, image_id, question in keys:
            item = Item(pk, "short_vqa", question, (), "a stripe")
            started = time.perf_counter()
            quality.duplicates_in_domain(
                {pk: (item, question_key(question))}, image_id=image_id, domain_id=domain.pk
            )
            lookups.append((time.perf_counter() - started) * 1000)
        with connection.cursor() as cursor:
            cursor.execute(
                "EXPLAIN SELECT i.id FROM corpus_instruction i JOIN corpus_image im ON im.id = i.image_id "
                "WHERE i.question_key IN (%s) AND im.domain_id = %s LIMIT 20",
                [question_key(keys[0][2]), domain.pk],
            )
            plan = " ".join(r[0] for r in cursor.fetchall())
        uses_index = "instruction_question_key_idx" in plan
        rows.append((size, pct(lookups, 0.5), pct(lookups, 0.95), max(lookups), uses_index, load()))
        print(f"  domain of {size:>9,} instructions (grown in {grown:.0f} s): near-duplicate lookup "
              f"p50 {pct(lookups, 0.5):.2f} ms, p95 {pct(lookups, 0.95):.2f} ms, max {max(lookups):.2f} ms; "
              f"index used: {uses_index}; load {load()}")  # fmt: skip

    # Per draft write: a write of one instruction on an image of 12 drafts, with and without the checks.
    image = Image.objects.filter(domain=domain).order_by("-id").first()
    caption = Caption.objects.create(image=image, text="A picture of stripes in a row.", status="accepted")
    Instruction.objects.filter(image=image).delete()
    made = []
    types = ["judgement", "multiple_choice", "short_vqa", "long_vqa"]
    for k in range(12):
        t = types[k % 4]
        fields = {
            "judgement": {"question": f"Is stripe {k} wide?", "answer": "Yes" if k % 2 else "No"},
            "multiple_choice": {
                "question": f"What is stripe {k}?",
                "options": ["wide", "thin", "red"],
                "answer": "A",
            },
            "short_vqa": {"question": f"What lies at stripe {k}?", "answer": "a stripe"},
            "long_vqa": {
                "question": f"Describe stripe {k}.",
                "answer": "The stripe runs across the picture in a row.",
            },
        }[t]
        made.append(item_service.create_instruction(image, type=t, caption=caption, **fields))
    check_ms, write_ms = [], []
    target = made[2]
    for n in range(args.writes):
        target.refresh_from_db()
        started = time.perf_counter()
        item_service.update_item(
            target, by=user, expected_version=target.version, changes={"answer": f"stripe {n % 7}"}
        )
        write_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        quality.check_image(image.pk, changed=[target.pk])
        check_ms.append((time.perf_counter() - started) * 1000)
    print(
        f"\nper draft write (image of 12 drafts, domain of {sizes[-1]:,}), {args.writes} writes, load {load()}:"
    )
    print(f"  check_image alone: p50 {pct(check_ms, 0.5):.2f} ms, p95 {pct(check_ms, 0.95):.2f} ms, "
          f"max {max(check_ms):.2f} ms")  # fmt: skip
    print(f"  whole update_item (rules, CAS, revision, checks): p50 {pct(write_ms, 0.5):.2f} ms, "
          f"p95 {pct(write_ms, 0.95):.2f} ms")  # fmt: skip
    print("\n| instructions in the domain | lookup p50 ms | p95 ms | max ms | index | load average |")
    print("|---|---|---|---|---|---|")
    for size, p50, p95, worst, idx, ld in rows:
        print(f"| {size:,} | {p50:.2f} | {p95:.2f} | {worst:.2f} | {'yes' if idx else 'no'} | {ld} |")


if __name__ == "__main__":
    main()
