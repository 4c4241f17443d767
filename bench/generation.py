"""Generation throughput against the fake OpenAI server: achieved requests/s with one and two worker
processes under a shared per-minute limit, as a ratio to the ideal min(limit/60, concurrency/latency),
the busiest 60-second window (must stay ≤ the limit) and the workers' CPU time per request.

    python bench/generation.py [--units 900] [--latency 1.0] [--rpm 600] [--concurrency 16]
                               [--stage captions|verify]

--stage verify: each image gets a caption and ten draft instructions first; a unit is one verification
request (the image, its caption and its drafts) and stores ten verdicts.

Uses its own PostgreSQL database (mmi_bench_generation, created if missing) and Redis db 5 (flushed).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = "mmi_bench_generation"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/5"
MEDIA = Path(tempfile.mkdtemp(prefix="mmi-bench-gen-"))

os.environ.update(
    DATABASE_URL=DB_URL,
    REDIS_URL=REDIS_URL,
    MEDIA_ROOT=str(MEDIA),
    DJANGO_SETTINGS_MODULE="mminstruct_site.settings",
)


def ensure_database() -> None:
    exists = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DB_NAME}"], check=True
        )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=900)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--stage", choices=["captions", "verify"], default="captions")
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    import redis
    from django.core.files.base import ContentFile
    from PIL import Image as PILImage

    from corpus.models import Caption, Domain, Image, Instruction
    from generation import services
    from generation.models import Endpoint, GenerationJob, GenerationUnit, JobStatus
    from tests.fakes.openai_server import FakeOpenAI

    buf = io.BytesIO()
    PILImage.new("RGB", (64, 48), (120, 80, 40)).save(buf, format="PNG")
    png = buf.getvalue()
    ideal = min(args.rpm / 60, args.concurrency / args.latency)
    print(f"fake latency {args.latency} s, limit {args.rpm} rpm, concurrency {args.concurrency}/worker, "
          f"{args.units} {args.stage} requests per run; ideal {ideal:.2f} req/s")  # fmt: skip
    rows = []
    for n_workers in [int(x) for x in args.workers.split(",")]:
        redis.Redis.from_url(REDIS_URL).flushdb()
        GenerationJob.objects.all().delete()
        Caption.objects.all().delete()
        Image.objects.all().delete()
        domain, _ = Domain.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        import hashlib

        for i in range(args.units):
            content = png + i.to_bytes(4, "big")  # distinct bytes per image; PIL ignores the trailer
            sha = hashlib.sha256(content).hexdigest()
            image = Image.objects.create(
                domain=domain, sha256=sha, format="PNG", file=ContentFile(content, name=f"{sha}.png")
            )
            if args.stage == "verify":
                caption = Caption.objects.create(image=image, text="A brown square.", status="accepted")
                Instruction.objects.bulk_create(
                    [
                        Instruction(
                            image=image,
                            caption=caption,
                            type="short_vqa",
                            answer="brown",
                            question=f"What colour is square {i}-{k}?",
                        )  # fmt: skip
                        for k in range(10)
                    ]
                )
        fake = FakeOpenAI(latency=args.latency).start()
        services.ensure_default_endpoints()
        Endpoint.objects.filter(kind="vision").update(
            base_url=fake.base_url,
            rpm_limit=args.rpm,
            tpm_limit=0,
            max_concurrency=args.concurrency,
            timeout=30,
        )
        env = {
            **os.environ,
            # Workers re-sync the default endpoints from OPENAI_* when they start: say the same there.
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_RPM_LIMIT": str(args.rpm),
            "OPENAI_TPM_LIMIT": "0",
            "OPENAI_MAX_CONCURRENCY": str(args.concurrency),
            "OPENAI_TIMEOUT": "30",
            "OPENAI_API_KEY": "bench",
            "GENERATION_CHUNK_SIZE": str(max(50, args.concurrency * 8)),
        }
        procs = []
        for w in range(n_workers):
            log = MEDIA / f"worker-{n_workers}-{w}.log"
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "mminstruct_site",
                        "worker",
                        "--pool=solo",
                        "-n",
                        f"bench-gen-{n_workers}-{w}@%h",
                        f"--logfile={log}",
                        "--loglevel=WARNING",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
        time.sleep(6)  # workers ready
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        # force: the key variable is set for the workers only (the fake server accepts any key).
        job = services.launch_job(stage=args.stage, by=None, domains=["bench"], force=True)
        while GenerationJob.objects.get(pk=job.pk).status not in (JobStatus.DONE, JobStatus.FAILED):
            time.sleep(1)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        fake.stop()
        times = sorted(r.at for r in fake.requests)
        n = len(times)
        span = times[-1] - times[0]
        rps = (n - 1) / span if span else float("nan")
        busiest = fake.max_in_window(60.0)
        done = GenerationUnit.objects.filter(job=job, status="done").count()
        rows.append((n_workers, n, done, span, rps, rps / ideal, busiest, cpu / max(n, 1) * 1000))
        print(f"  {n_workers} worker(s): {n} requests ({done} units done) in {span:.1f} s → {rps:.2f} req/s "
              f"= {rps / ideal:.1%} of ideal; busiest 60-s window {busiest} (limit {args.rpm}); "
              f"worker CPU {cpu / max(n, 1) * 1000:.1f} ms/request")  # fmt: skip
    print("\n| workers | requests | seconds | req/s | of ideal | busiest 60 s | CPU ms/request |")
    print("|---|---|---|---|---|---|---|")
    for w, n, _done, span, rps, ratio, busiest, cpu_ms in rows:
        print(f"| {w} | {n} | {span:.1f} | {rps:.2f} | {ratio:.1%} | {busiest} / {args.rpm} | {cpu_ms:.1f} |")


if __name__ == "__main__":
    main()
