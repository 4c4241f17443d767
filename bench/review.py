"""Benchmark of the review queue: next-item and save against a trivial authenticated view, at two sizes.

    createdb mmi_bench_review   # (psql -c "CREATE DATABASE mmi_bench_review")
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mmi_bench_review .venv/bin/python bench/review.py

For each size (10,000 and 1,000,000 instructions; a quarter as many images, four instructions and one
caption each; the lower half of the ids already reviewed, like a queue worked from the front) the tables
are emptied and seeded with INSERT … SELECT generate_series (no ORM) — the instructions' rules verdict
remembered, as corpus.services records it for every valid instruction it stores —, ANALYZEd, and then:

  1 annotator, then 8 at once: each loop does GET of a trivial authenticated DRF view (same session
  auth, same role check — the floor), POST /api/v1/review/images/next/ (claim: the
  image, its lease; the drafts are one GET away) and POST …/instructions/<id>/save/ (accept one draft, with its version; a caption once the
  image has no draft instruction left — the save that decides the last draft also finishes the image).
  Between phases the leases are dropped: images with drafts left go back to the queue.

Server time is measured in-process: perf_counter around Django's test Client call, i.e. middleware,
authentication, view, database and serialisation, without a network hop or a WSGI server's parsing.
Threads share one interpreter (GIL), so the 8-client figures include that contention — for the floor
too, which is why each ratio compares figures of the same phase. Database connections persist
(DB_CONN_MAX_AGE), as under a production server.

Each size lives in its own schema of the bench database and the sizes are measured in alternating
rounds, so that the load other processes put on the machine meanwhile falls on both sizes alike.

The per-user API throttle is lifted (API_THROTTLE_USER) for the run; its check stays in every request.

Then 8 annotators make 10,000 claims at the large size; every claimed id is collected and duplicates are
counted (and the claim events cross-checked).
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mminstruct_site.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mmi_bench_review")
os.environ.setdefault("DB_CONN_MAX_AGE", "600")
# Each annotator makes thousands of calls a minute here, far above the per-user API throttle (600/minute):
# the benchmark measures the queue, not the throttle (which stays in the path: its check costs the floor
# and the endpoints alike).
os.environ.setdefault("API_THROTTLE_USER", "10000000/minute")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings, setup_test_environment  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from accounts.roles import ANNOTATOR  # noqa: E402
from corpus.models import Caption, Instruction  # noqa: E402
from corpus.rules import RULES_VERSION, check_instruction  # noqa: E402

DOMAINS = 4


class Ping(APIView):
    """The floor: authenticated by the same session, checked by the same role permission, no work."""

    allowed_roles = (ANNOTATOR,)

    def get(self, request):
        return Response({"ok": True})


def _bench_urlconf():
    import types

    from mminstruct_site import urls as project_urls

    module = types.ModuleType("bench_review_urls")
    module.urlpatterns = [path("bench/ping/", Ping.as_view()), *project_urls.urlpatterns]
    sys.modules["bench_review_urls"] = module
    return "bench_review_urls"


def seed(instructions: int) -> dict:
    images = instructions // 4
    started = time.perf_counter()
    with connection.cursor() as c:
        c.execute(
            "TRUNCATE corpus_image, corpus_caption, corpus_instruction, corpus_revision, corpus_imageevent, "
            "review_hallucinationmark, review_secondpass, review_secondverdict RESTART IDENTITY CASCADE"
        )
        c.execute("DELETE FROM corpus_domain WHERE slug LIKE 'bench-%%'")
        c.execute(
            "INSERT INTO corpus_domain (name, slug, description, guidelines, is_active) "
            "SELECT 'Bench ' || g, 'bench-' || g, '', '', true FROM generate_series(1, %s) g",
            [DOMAINS],
        )
        c.execute("UPDATE corpus_domain SET is_active = (slug LIKE 'bench-%%')")
        c.execute("SELECT array_agg(id ORDER BY id) FROM corpus_domain WHERE slug LIKE 'bench-%%'")
        domain_ids = c.fetchone()[0]
        # Lower half of the ids reviewed (the queue's front is done), upper half pending.
        c.execute(
            """
            INSERT INTO corpus_image (file, thumbnail, original_name, sha256, phash, width, height, format,
                domain_id, source, license, prior_knowledge, ocr_text, is_sample, imported_at, review_status)
            SELECT 'images/bench.png', '', 'bench-' || g || '.png', md5(g::text) || md5((-g)::text), '', 640,
                480, 'PNG', (%s::bigint[])[1 + g %% %s], 'bench', 'CC0', '', '', false, now(),
                CASE WHEN g <= %s THEN 'reviewed' ELSE 'pending' END
            FROM generate_series(1, %s) AS g
            """,
            [domain_ids, DOMAINS, images // 2, images],
        )
        c.execute(
            """
            INSERT INTO corpus_caption (image_id, status, origin, model_name, version, reason, created_at,
                updated_at, text, tokens_in, tokens_out, latency_ms, cost)
            SELECT id, CASE WHEN review_status = 'reviewed' THEN 'accepted' ELSE 'draft' END, 'model',
                'bench-vision', 1, '', now(), now(),
                'A bench image of a kitchen with a red kettle on a white stove and two mugs beside it.',
                0, 0, 0, 0
            FROM corpus_image
            """
        )
        c.execute(
            """
            INSERT INTO corpus_instruction (image_id, status, origin, model_name, version, reason, created_at,
                updated_at, type, question, options, answer)
            SELECT i.id, CASE WHEN i.review_status = 'reviewed' THEN 'accepted' ELSE 'draft' END, 'model',
                'bench-text', 1, '', now(), now(),
                (ARRAY['judgement', 'multiple_choice', 'long_vqa', 'short_vqa'])[t + 1],
                (ARRAY['Is the kettle red?', 'What colour is the kettle?', 'Describe the stove.',
                       'How many mugs?'])[t + 1],
                CASE WHEN t = 1 THEN '["red", "green", "blue", "black"]'::jsonb ELSE '[]'::jsonb END,
                (ARRAY['Yes', 'A', 'The stove is white and has a red kettle standing on it.', 'two'])[t + 1]
            FROM corpus_image i CROSS JOIN generate_series(0, 3) AS t
            """
        )
        # As corpus.services does for every valid instruction it stores, remember the rules' verdict (the
        # review save trusts it instead of checking again). Every seeded row is one of four templates:
        # each is checked here first, so the verdict is true.
        c.execute("SELECT DISTINCT type, question, options::text, answer FROM corpus_instruction")
        for type_, question, options, answer in c.fetchall():
            assert not check_instruction(type_, question, json.loads(options), answer), (type_, question)
        c.execute(
            "UPDATE corpus_instruction SET checked_digest = content_digest, checked_rules = %s",
            [RULES_VERSION],
        )
        c.execute("ANALYZE")
        c.execute("SELECT count(*) FROM corpus_instruction")
        seeded = c.fetchone()[0]
    return {"instructions": seeded, "images": images, "seconds": time.perf_counter() - started}


def annotators(n: int) -> list[User]:
    group, _ = Group.objects.get_or_create(name=ANNOTATOR)
    users = []
    for k in range(n):
        user, _ = User.objects.get_or_create(username=f"bench-annotator-{k}")
        user.groups.add(group)
        users.append(user)
    return users


def reset_leases() -> None:
    with connection.cursor() as c:
        c.execute(
            "UPDATE corpus_image AS i SET leased_by_id = NULL, lease_expires_at = NULL, review_status = CASE "
            "WHEN EXISTS (SELECT 1 FROM corpus_instruction WHERE image_id = i.id AND status = 'draft') "
            "OR EXISTS (SELECT 1 FROM corpus_caption WHERE image_id = i.id AND status = 'draft') "
            "THEN 'pending' ELSE 'reviewed' END WHERE review_status = 'in_review'"
        )


def a_draft(image_id: int) -> tuple[str, tuple[int, int]]:
    """An undecided item of the image (an instruction first, else its caption): (kind, (id, version))."""
    found = Instruction.objects.filter(image_id=image_id, status="draft").values_list("id", "version").first()
    if found:
        return "instructions", found
    return "captions", Caption.objects.filter(image_id=image_id, status="draft").values_list(
        "id", "version"
    ).first()


def run_phase(users: list[User], loops: int) -> dict[str, list[float]]:
    """Each user, in its own thread, loops: trivial view, next-item, save. Returns durations (ms)."""
    times: dict[str, list[float]] = {"floor": [], "next": [], "save": []}
    lock = threading.Lock()
    errors: list[str] = []
    barrier = threading.Barrier(len(users))

    def work(user):
        client = Client()
        client.force_login(user)
        mine = {"floor": [], "next": [], "save": []}
        try:
            barrier.wait()
            for _ in range(loops):
                t = time.perf_counter()
                r = client.get("/bench/ping/")
                mine["floor"].append(time.perf_counter() - t)
                assert r.status_code == 200, r.status_code
                t = time.perf_counter()
                r = client.post("/api/v1/review/images/next/", {}, content_type="application/json")
                mine["next"].append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors.append(f"next: {r.status_code}")
                    continue
                kind, draft = a_draft(r.json()["id"])  # bench plumbing, not timed
                t = time.perf_counter()
                r = client.post(
                    f"/api/v1/review/{kind}/{draft[0]}/save/",
                    {"expected_version": draft[1], "status": "accepted"},
                    content_type="application/json",
                )
                mine["save"].append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors.append(f"save: {r.status_code} {r.content[:200]!r}")
        finally:
            with lock:
                for k, v in mine.items():
                    times[k].extend(x * 1000 for x in v)
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"errors during the phase: {errors[:5]} ({len(errors)} in all)")
    return times


def count_double_claims(users: list[User], claims: int) -> dict:
    """8 annotators claim `claims` images through the service; duplicates are counted two ways."""
    from review.services.queue import claim_next_image

    claimed: list[int] = []
    lock = threading.Lock()
    per_user = claims // len(users)
    barrier = threading.Barrier(len(users))
    with connection.cursor() as c:
        c.execute("SELECT coalesce(max(id), 0) FROM corpus_imageevent")
        first_event = c.fetchone()[0]

    def work(user):
        mine = []
        barrier.wait()
        for _ in range(per_user):
            got = claim_next_image(user)
            if got is not None:
                mine.append(got)
        with lock:
            claimed.extend(mine)
        connections.close_all()

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    with connection.cursor() as c:
        c.execute(
            "SELECT count(*) FROM (SELECT image_id FROM corpus_imageevent WHERE id > %s AND "
            "to_status = 'in_review' GROUP BY image_id HAVING count(*) > 1) d",
            [first_event],
        )
        double_events = c.fetchone()[0]
    return {
        "claims": len(claimed),
        "distinct_images": len(set(claimed)),
        "leased_twice": len(claimed) - len(set(claimed)),
        "images_with_two_claim_events": double_events,
        "seconds": elapsed,
    }


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def summarise(times: dict[str, list[float]]) -> dict:
    return {k: {"n": len(v), "p50": pct(v, 50), "p95": pct(v, 95)} for k, v in times.items()}


def use_schema(schema: str) -> None:
    """Point every new connection at one size's schema (threads open theirs from these settings)."""
    connections.close_all()
    options = settings.DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = f"-c random_page_cost=1.1 -c search_path={schema}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="instruction counts, comma-separated")
    parser.add_argument("--loops-one", type=int, default=400, help="loops of the single annotator")
    parser.add_argument("--loops-eight", type=int, default=100, help="loops of each of the 8 annotators")
    parser.add_argument("--rounds", type=int, default=5, help="alternations between the sizes")
    parser.add_argument("--claims", type=int, default=10_000)
    parser.add_argument("--json", default=str(ROOT / "var" / "bench-review.json"))
    args = parser.parse_args()
    assert connection.vendor == "postgresql", "the benchmark needs PostgreSQL (DATABASE_URL)"
    setup_test_environment()
    sizes = [int(s) for s in args.sizes.split(",")]
    schemas = {size: f"bench_review_{size}" for size in sizes}
    report: dict = {"sizes": {}, "cpu_count": os.cpu_count()}
    # Each size lives in its own schema of the bench database, so the sizes can be measured in
    # alternating rounds: drifting load from other processes on the machine hits both alike.
    for size, schema in schemas.items():
        with connection.cursor() as c:
            c.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        use_schema(schema)
        call_command("migrate", verbosity=0)
        info = seed(size)
        annotators(8)
        report["sizes"][size] = {"seed": info}
        print(
            f"seeded {info['instructions']:,} instructions / {info['images']:,} images in {info['seconds']:.1f} s"
        )
    samples = {size: {label: {"floor": [], "next": [], "save": []} for label in ("1", "8")} for size in sizes}
    loads = []
    with override_settings(ROOT_URLCONF=_bench_urlconf(), ALLOWED_HOSTS=["testserver"]):
        for round_no in range(args.rounds):
            order = sizes if round_no % 2 == 0 else list(reversed(sizes))
            for size in order:
                use_schema(schemas[size])
                users = list(
                    User.objects.filter(username__startswith="bench-annotator-").order_by("username")
                )
                for label, group, loops in (
                    ("1", users[:1], max(1, args.loops_one // args.rounds)),
                    ("8", users, max(1, args.loops_eight // args.rounds)),
                ):
                    run_phase(group, 3)  # warm-up: connections, caches, code paths
                    reset_leases()
                    loads.append(os.getloadavg()[0])
                    for key, values in run_phase(group, loops).items():
                        samples[size][label][key].extend(values)
                    reset_leases()
            print(f"round {round_no + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})")
        for size in sizes:
            entry = report["sizes"][size]
            for label in ("1", "8"):
                entry[label] = summarise(samples[size][label])
                print(
                    f"{size:>9,} instructions, {label} annotator(s): "
                    + "  ".join(
                        f"{k} p50 {v['p50']:.2f} ms p95 {v['p95']:.2f} ms (n={v['n']})"
                        for k, v in entry[label].items()
                    )
                )
        large = max(sizes)
        use_schema(schemas[large])
        users = list(User.objects.filter(username__startswith="bench-annotator-").order_by("username"))
        report["sizes"][large]["claims"] = count_double_claims(users, args.claims)
        reset_leases()
        print(f"{args.claims:,} claims by 8 annotators at {large:,}: {report['sizes'][large]['claims']}")
    report["load_1min"] = {"min": min(loads), "max": max(loads), "mean": statistics.mean(loads)}
    small, large_entry = report["sizes"][min(sizes)], report["sizes"][max(sizes)]
    checks = {
        "next p95 large/small, 1 annotator (<= 1.5)": large_entry["1"]["next"]["p95"]
        / small["1"]["next"]["p95"],
        "next p95 large/small, 8 annotators (<= 1.5)": large_entry["8"]["next"]["p95"]
        / small["8"]["next"]["p95"],
        "next p95 / floor p95, 1 annotator, large (<= 4)": large_entry["1"]["next"]["p95"]
        / large_entry["1"]["floor"]["p95"],
        "next p95 / floor p95, 8 annotators, large (<= 5)": large_entry["8"]["next"]["p95"]
        / large_entry["8"]["floor"]["p95"],
        "save p95 / floor p95, 1 annotator, large": large_entry["1"]["save"]["p95"]
        / large_entry["1"]["floor"]["p95"],
        "save p95 / floor p95, 8 annotators, large": large_entry["8"]["save"]["p95"]
        / large_entry["8"]["floor"]["p95"],
    }
    report["ratios"] = checks
    print(
        f"load average (1 min) during the phases: {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores"
    )
    print("ratios:")
    for name, value in checks.items():
        print(f"  {name}: {value:.2f}")
    print(f"leased twice: {report['sizes'][max(sizes)]['claims']['leased_twice']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
