"""Benchmark: building an export's LLaVA JSON (images referenced) against PostgreSQL's COPY floor.

    DATABASE_URL is ignored; the script uses its own database (default mmi_bench_exports), creates it,
    migrates it, and seeds it fast with INSERT … SELECT generate_series (not the ORM).

    .venv/bin/python bench/export.py                      # 100,000 and 1,000,000 instructions
    .venv/bin/python bench/export.py --sizes 100000 --runs 2

For each size: seed (4 accepted instructions per image, 25 domains), `manage.py recheck_rules` (rows as
the app's write path leaves them: checked, the check remembered; `--no-recheck` leaves them unmarked, so
the build checks every row itself), VACUUM, then alternate `COPY (the export's own SELECT) TO STDOUT`
read by psql into /dev/null (the floor; also by psycopg's Copy iterator, for reference) with a full
build of the export (count, binary COPY stream of one JSON value per image, rule checks where needed,
formatting, data file, manifest, card, tar, sha256s, fsync, publish) — each after `sync`, so no run
pays for the previous one's writeback — and each build in a fresh subprocess whose wall time,
CPU time (all its threads), peak RSS (VmHWM) and phase timings (count / stream / manifest / tar, from
the build's log) are reported. Prints a table and the acceptance checks (median of the runs; best and
worst run too, since the machine is shared).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = "postgres://postgres@127.0.0.1:5432"

SEED_SQL = """
TRUNCATE exports_exportversionevent, exports_exportversion, exports_exportspec,
         corpus_revision, corpus_instruction, corpus_caption, corpus_image RESTART IDENTITY CASCADE;
INSERT INTO corpus_image (file, thumbnail, original_name, sha256, phash, width, height, format, domain_id,
    source, license, prior_knowledge, ocr_text, is_sample, imported_at, review_status)
SELECT 'images/' || substr(h, 1, 2) || '/' || h || '.jpg', '', 'photo-' || g || '.jpg', h, '', 640, 480, 'JPEG',
       d.ids[1 + g % array_length(d.ids, 1)], 'bench', 'CC0', '', '', false, now(), 'reviewed'
FROM (SELECT g, encode(sha256(g::text::bytea), 'hex') AS h FROM generate_series(1, %(images)s) g) s,
     (SELECT array_agg(id ORDER BY id) AS ids FROM corpus_domain) d;
INSERT INTO corpus_instruction (image_id, status, origin, model_name, prompt_version, version, reason,
    created_at, updated_at, reviewed_at, type, question, options, answer)
SELECT im, 'accepted', 'model', 'bench-model', 1, 1 + (im + k) % 3, '', now(), now(), now(),
       (ARRAY['short_vqa', 'multiple_choice', 'judgement', 'long_vqa'])[k + 1],
       CASE k
         WHEN 0 THEN 'What is the person near the ' || (ARRAY['left','right','top','bottom'])[1 + im % 4]
                     || ' edge of photo ' || im || ' holding in their hand?'
         WHEN 1 THEN 'Which object stands closest to the camera in photo ' || im || '?'
         WHEN 2 THEN 'Is there a bicycle leaning against the wall in photo ' || im || '?'
         ELSE 'Describe what the people in photo ' || im || ' are doing and how the scene is arranged.'
       END,
       CASE k WHEN 1 THEN jsonb_build_array('a red bicycle', 'a parked car with plate ' || im,
                                            'a tall green tree', 'an empty wooden bench')
              ELSE '[]'::jsonb END,
       CASE k
         WHEN 0 THEN 'a folded newspaper'
         WHEN 1 THEN (ARRAY['A','B','C','D'])[1 + im % 4]
         WHEN 2 THEN (ARRAY['Yes','No'])[1 + im % 2]
         ELSE 'Two cyclists wait at a crossing while a man in a grey coat reads a newspaper on the bench '
              || 'beside a parked car with plate ' || im || ', under a row of trees.'
       END
FROM generate_series(1, %(images)s) im, generate_series(0, 3) k
ORDER BY im, k;
"""


def sh_env(db: str, exports_root: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"{PG}/{db}",
        EXPORTS_ROOT=exports_root,
        DJANGO_SETTINGS_MODULE="mminstruct_site.settings",
        LOG_LEVEL="WARNING",
    )
    # Production settings refuse to start without a key (unless DEBUG is on): a bench-only one, so the
    # script runs from a plain shell with DEBUG as the caller left it.
    env.setdefault("SECRET_KEY", "bench-only-key-" + "b" * 40)
    env.pop("REDIS_URL", None)
    return env


def ensure_database(db: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
            conn.execute(f'CREATE DATABASE "{db}"')


def seed(db: str, instructions: int, env: dict, *, recheck: bool = True) -> tuple[float, float]:
    """Insert the rows, then run `manage.py recheck_rules` — what the app's write path does for each row
    it writes (corpus.services checks it and remembers the check) — and compact the table the marking
    rewrote. Returns (seconds to insert, seconds of recheck_rules)."""
    import psycopg

    images = instructions // 4
    started = time.perf_counter()
    with psycopg.connect(f"{PG}/{db}", autocommit=True) as conn:
        for statement in SEED_SQL.split(";\n"):
            if statement.strip():
                conn.execute(statement.replace("%(images)s", str(images)))
        inserted = time.perf_counter() - started
        started = time.perf_counter()
        if recheck:
            subprocess.run([sys.executable, "manage.py", "recheck_rules"], env=env, cwd=ROOT, check=True)
        rechecked = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE corpus_image")
        conn.execute("VACUUM FULL ANALYZE corpus_instruction")  # the marking rewrote every row
        conn.execute("VACUUM corpus_instruction")  # the visibility map, for index-only counts
    return inserted, rechecked


def peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


# ---- child processes ---------------------------------------------------------------------------


def child_setup():
    import django

    django.setup()


def child_make_spec() -> None:
    child_setup()
    from exports.models import ExportSpec
    from exports.services.specs import create_spec

    if not ExportSpec.objects.filter(name="bench").exists():
        create_spec("bench", by=None, formats=["llava"], image_mode="reference", train_ratio=0.95, seed=1)
    print(json.dumps({"ok": True}))


def child_floor() -> None:
    """Time COPY (the export's SELECT) TO STDOUT, read to the end and thrown away: by psql (a C client
    writing to /dev/null) and by psycopg's Copy iterator (what a Python exporter would naively use)."""
    child_setup()
    from django.db import connection, transaction

    from exports.models import ExportSpec
    from exports.services.rows import literal_sql, select_sql
    from exports.services.specs import parse_selection

    spec = ExportSpec.objects.get(name="bench")
    query = literal_sql(*select_sql(parse_selection(spec.selection)))
    db = connection.settings_dict["NAME"]
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                db,
                "-qAt",
                "-c",
                "SET random_page_cost = 1.1",
                "-c",
                f"COPY ({query}) TO STDOUT",
            ],
            stdout=devnull,
            check=True,
        )
    psql_seconds = time.perf_counter() - started
    started = time.perf_counter()
    total = 0
    with transaction.atomic():
        with connection.connection.cursor() as cursor:
            with cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
                for block in copy:
                    total += len(block)
    print(
        json.dumps(
            {
                "seconds": psql_seconds,
                "psycopg_seconds": time.perf_counter() - started,
                "bytes": total,
                "vmhwm_kb": peak_rss_kb(),
            }
        )
    )


def child_stages() -> None:
    """Where a build's time goes: reading the rows through the build's own reader (rows.iter_images:
    grouped by image on the server, parsed by orjson), then the same plus
    corpus.rules.check_instruction on every instruction (what the build must do before writing)."""
    child_setup()
    from django.db import transaction

    from corpus.rules import check_instruction
    from exports.models import ExportSpec
    from exports.services.rows import iter_images
    from exports.services.specs import parse_selection

    selection = parse_selection(ExportSpec.objects.get(name="bench").selection)
    started = time.perf_counter()
    with transaction.atomic():
        for _image in iter_images(selection):
            pass
    read = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        for *_image, instructions in iter_images(selection):
            for _iid, _ver, typ, question, options, answer, _checked, _dialogue, _turn in instructions:
                check_instruction(typ, question, options, answer)
    checked = time.perf_counter() - started
    print(json.dumps({"read": read, "read_check": checked}))


def child_idle() -> None:
    """The bare interpreter + Django, to show what the build adds."""
    child_setup()
    from exports.services import build  # noqa: F401  (imports pyarrow & co. like the build does)

    print(json.dumps({"vmhwm_kb": peak_rss_kb()}))


def child_build() -> None:
    child_setup()
    import logging

    from exports.models import ExportSpec
    from exports.services.build import build_version
    from exports.services.specs import allocate_version

    phases: dict = {}

    class Phases(logging.Handler):
        def emit(self, record):
            phases.update(getattr(record, "export_timings", {}))

    build_log = logging.getLogger("exports.services.build")
    build_log.addHandler(Phases())
    build_log.setLevel(logging.INFO)
    spec = ExportSpec.objects.get(name="bench")
    version = allocate_version(spec, by=None)
    started = time.perf_counter()
    cpu = time.process_time()
    version = build_version(version)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if version.status != "done":
        raise SystemExit(f"build failed: {version.error}")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "vmhwm_kb": peak_rss_kb(),
                "sha256": version.sha256,
                "bytes": version.size_bytes,
                "instructions": version.counts["instructions"],
                "phases": phases,
            }
        )
    )


def run_child(kind: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="mmi_bench_exports")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-recheck", action="store_true", help="leave the rows' rule checks unremembered")
    parser.add_argument("--child", choices=["floor", "build", "idle", "spec", "stages"])
    args = parser.parse_args()
    if args.child:
        children = {
            "floor": child_floor,
            "build": child_build,
            "idle": child_idle,
            "spec": child_make_spec,
            "stages": child_stages,
        }
        children[args.child]()
        return

    ensure_database(args.db)
    exports_root = tempfile.mkdtemp(prefix="bench-exports-")
    env = sh_env(args.db, exports_root)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    idle = run_child("idle", env)
    print(f"machine: {os.cpu_count()} cores, load average at start {loadavg()}")
    print(f"bare interpreter + Django + writers: VmHWM {idle['vmhwm_kb'] / 1024:.1f} MiB\n")
    results = {}
    for size in args.sizes:
        seconds, rechecked = seed(args.db, size, env, recheck=not args.no_recheck)
        run_child("spec", env)
        print(
            f"seeded {size:,} instructions ({size // 4:,} images) in {seconds:.1f}s, "
            f"recheck_rules {rechecked:.1f}s; load {loadavg()}"
        )
        floors, builds = [], []
        stages = run_child("stages", env)
        print(
            f"  stages: rows read through the exporter's reader {stages['read']:.2f}s; "
            f"+ check_instruction on each {stages['read_check']:.2f}s; load {loadavg()}"
        )
        for run in range(args.runs):
            # Each measurement starts with no dirty pages of the one before (a build writes ~650 MB at
            # 1M; their writeback landing in the next run was worth up to +1 s of CPU in it).
            os.sync()
            floor = run_child("floor", env)
            os.sync()
            build = run_child("build", env)
            floors.append(floor)
            builds.append(build)
            print(
                f"  run {run + 1}: COPY floor psql {floor['seconds']:.2f}s / psycopg {floor['psycopg_seconds']:.2f}s "
                f"({floor['bytes'] / 1e6:.0f} MB)  build {build['seconds']:.2f}s (CPU {build['cpu_seconds']:.2f}s; "
                f"{build['bytes'] / 1e6:.0f} MB archive, "
                f"{build['instructions']:,} instr)  ratio {build['seconds'] / floor['seconds']:.2f}× "
                f"(CPU {build['cpu_seconds'] / floor['seconds']:.2f}×)  "
                f"peak RSS {build['vmhwm_kb'] / 1024:.1f} MiB  load {loadavg()}\n"
                f"         phases: "
                + ", ".join(f"{phase} {sec:.2f}s" for phase, sec in build.get("phases", {}).items())
            )
            for path in Path(exports_root).rglob("*.tar"):
                path.unlink()
        shas = {b["sha256"] for b in builds}
        floor_s = statistics.median(f["seconds"] for f in floors)
        build_s = statistics.median(b["seconds"] for b in builds)
        ratios = [b["seconds"] / f["seconds"] for f, b in zip(floors, builds, strict=True)]
        cpu_ratios = [b["cpu_seconds"] / f["seconds"] for f, b in zip(floors, builds, strict=True)]
        results[size] = {
            "floor": floor_s,
            "build": build_s,
            "ratio": statistics.median(ratios),
            "best": min(ratios),
            "worst": max(ratios),
            "cpu_ratio": statistics.median(cpu_ratios),
            "rss_kb": max(b["vmhwm_kb"] for b in builds),
            "identical": len(shas) == 1,
            "psycopg_floor": statistics.median(f["psycopg_seconds"] for f in floors),
            "cpu": statistics.median(b["cpu_seconds"] for b in builds),
            "read": stages["read"],
            "read_check": stages["read_check"],
        }
        print(
            f"  median: floor {floor_s:.2f}s build {build_s:.2f}s ratio {results[size]['ratio']:.2f}× "
            f"(best {min(ratios):.2f}×, worst {max(ratios):.2f}×; CPU {results[size]['cpu_ratio']:.2f}×); "
            f"peak RSS {results[size]['rss_kb'] / 1024:.1f} MiB; all {args.runs} builds byte-identical: "
            f"{results[size]['identical']}\n"
        )
    print(
        "| instructions | COPY floor psql (s) | COPY via psycopg (s) | rows read (s) | read + rule check (s) "
        "| build wall (s) | build CPU (s) | build / floor (best–worst) | build CPU / floor | peak RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, r in results.items():
        print(
            f"| {size:,} | {r['floor']:.2f} | {r['psycopg_floor']:.2f} | {r['read']:.2f} | {r['read_check']:.2f} "
            f"| {r['build']:.2f} | {r['cpu']:.2f} | {r['ratio']:.2f}× ({r['best']:.2f}–{r['worst']:.2f}) "
            f"| {r['cpu_ratio']:.2f}× | {r['rss_kb'] / 1024:.1f} |"
        )
    if 100_000 in results and 1_000_000 in results:
        small, big = results[100_000], results[1_000_000]
        print(
            f"\nacceptance: 1M ratio {big['ratio']:.2f}× (≤ 2×: {big['ratio'] <= 2}); "
            f"100k ratio {small['ratio']:.2f}× (≤ 2.5×: {small['ratio'] <= 2.5}); "
            f"peak RSS 1M/100k {big['rss_kb'] / small['rss_kb']:.2f} (≤ 1.1: {big['rss_kb'] <= 1.1 * small['rss_kb']})"
        )
    print(f"load average at end {loadavg()}")


if __name__ == "__main__":
    main()
