"""Benchmark: import a LLaVA JSON dataset whose images are already in the pool; print the rate and the
peak memory at two sizes.

    DATABASE_URL=… python bench/import_dataset.py [--records 100000] [--small 10000] [--per-image 2]

For each size a fresh process prepares (outside the measurement) a domain, N/per-image tiny PNG files
in a temp folder whose rows are already in the pool, and a LLaVA JSON of N records (1–3 turns each,
two on average: a Judgement, a Long VQA and a Short VQA in turn); then another fresh process runs the
import (`corpus.services.dataset_import.import_dataset`, what the command runs) and reports its time
and its peak RSS (ru_maxrss). Everything is deleted at the end. The bars (issue 14): ≥ 7,300
records/s at 100k, and peak RSS at 100k ≤ 1.1× the one at 10k. The load average is printed beside each
figure: the machine is shared.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mminstruct_site.settings")
if os.environ.get("DEBUG", "").lower() not in ("1", "true", "yes") and not os.environ.get("SECRET_KEY"):
    os.environ["SECRET_KEY"] = "bench-only-not-secret"

DOMAIN = "bench-dataset-import"
TURNS = [
    [("<image>\nIs there a dog in the picture?", "Yes")],
    [
        ("<image>\nWhat is the person on the left doing?", "The person on the left is riding a red bicycle."),
        ("What colour is the car?", "blue"),
    ],
    [
        ("<image>\nIs it raining?", "No"),
        ("How many people are there?", "three"),
        ("Describe the scene.", "A busy street with shops, cars and people walking under a grey sky."),
    ],
]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def prepare(folder: Path, records: int, per_image: int) -> None:
    """Images on disk and in the pool, and the data file (streamed to disk, never held)."""
    import hashlib
    import io

    import django

    django.setup()
    from PIL import Image as PILImage

    from corpus.models import Domain, Image

    domain, _ = Domain.objects.get_or_create(slug=DOMAIN, defaults={"name": "Bench dataset import"})
    n_images = max(1, records // per_image)
    images = folder / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(n_images):
        img = PILImage.new("RGB", (4, 4), (i % 256, (i // 256) % 256, (i // 65536) % 256))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        data = buf.getvalue()
        name = f"{i // 1000:03d}/img-{i:06d}.png"
        (images / name).parent.mkdir(exist_ok=True)
        (images / name).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        rows.append(
            Image(
                sha256=sha, file=f"images/{sha[:2]}/{sha}.png", format="PNG", width=4, height=4, domain=domain
            )
        )
        if len(rows) == 5000:
            Image.objects.bulk_create(rows)
            rows = []
    Image.objects.bulk_create(rows)
    with open(folder / "data.json", "w") as out:
        out.write("[\n")
        for n in range(records):
            turns = TURNS[n % len(TURNS)]
            conversations = []
            for question, answer in turns:
                conversations += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
            record = {"id": f"r{n}", "image": f"{(n % n_images) // 1000:03d}/img-{n % n_images:06d}.png"}
            record["conversations"] = conversations
            out.write(("" if n == 0 else ",\n") + json.dumps(record))
        out.write("\n]\n")


def run(folder: Path) -> dict:
    import django

    django.setup()
    from corpus.models import Domain
    from corpus.services.dataset_import import import_dataset

    domain = Domain.objects.get(slug=DOMAIN)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_before = usage.ru_maxrss
    cpu_before = usage.ru_utime + usage.ru_stime
    load_before = load()
    t0 = time.perf_counter()
    result = import_dataset(
        folder / "data.json", format="llava", domain=domain, name="bench", images=folder / "images"
    )
    elapsed = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary = result.summary
    return {
        "status": result.status,
        "records": summary["imported_records"],
        "instructions": summary["instructions"],
        "skipped": summary["skipped_records"],
        "images_imported": summary["images"]["imported"],
        "seconds": elapsed,
        "rss_before_mb": rss_before / 1024,
        "rss_peak_mb": usage.ru_maxrss / 1024,
        # This process's CPU (both threads): what the import costs Python, whatever the load. The
        # database server's share is not in it.
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_before,
        "load_before": load_before,
        "load_after": load(),
    }


def cleanup() -> None:
    import django

    django.setup()
    from django.db import connection

    from corpus.models import DatasetImport, Domain, Image, Instruction

    domain = Domain.objects.filter(slug=DOMAIN).first()
    if domain is None:
        return
    with connection.cursor() as cursor:  # the ORM's cascade would load 200k rows to delete them
        ids = list(DatasetImport.objects.filter(domain=domain).values_list("pk", flat=True))
        cursor.execute(
            "DELETE FROM corpus_revision WHERE instruction_id IN "
            "(SELECT id FROM corpus_instruction WHERE dataset_import_id = ANY(%s))",
            [ids],
        )
    Instruction.objects.filter(dataset_import_id__in=ids).delete()
    DatasetImport.objects.filter(pk__in=ids).delete()
    Image.objects.filter(domain=domain).delete()
    domain.delete()


def child(argv: list[str]) -> dict | None:
    out = subprocess.run(
        [sys.executable, __file__, *argv], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def measure(records: int, per_image: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        child(["--cleanup"])
        t0 = time.perf_counter()
        child(["--prepare", tmp, "--records", str(records), "--per-image", str(per_image)])
        prepared = time.perf_counter() - t0
        try:
            result = child(["--run", tmp])
        finally:
            child(["--cleanup"])
    result["prepare_seconds"] = prepared
    return result


def report(result: dict) -> None:
    rate = result["records"] / result["seconds"]
    print(
        f"  {result['records']:>7,} records ({result['instructions']:,} instructions, "
        f"{result['images_imported']} images imported, {result['skipped']} skipped): "
        f"{result['seconds']:.2f} s = {rate:,.0f} records/s (Python CPU {result['cpu_seconds']:.2f} s); peak RSS {result['rss_peak_mb']:.0f} MB "
        f"(after start-up {result['rss_before_mb']:.0f} MB); load average {result['load_before']} → "
        f"{result['load_after']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--per-image", type=int, default=2, help="records per distinct image")
    parser.add_argument("--prepare")
    parser.add_argument("--run")
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.prepare), args.records, args.per_image)
        return
    if args.run:
        print(json.dumps(run(Path(args.run))))
        return
    if args.cleanup:
        cleanup()
        return
    print(
        f"bench/import_dataset.py: LLaVA JSON, images already in the pool, {args.per_image} records per image"
    )
    results = {}
    for n in (args.small, args.records):
        results[n] = measure(n, args.per_image)
        report(results[n])
    small, large = results[args.small], results[args.records]
    print(
        f"rate at {args.records:,}: {large['records'] / large['seconds']:,.0f} records/s (bar 7,300); "
        f"peak RSS {large['rss_peak_mb']:.0f} MB vs {small['rss_peak_mb']:.0f} MB at {args.small:,} = "
        f"{large['rss_peak_mb'] / small['rss_peak_mb']:.3f}× (bar 1.1×)"
    )


if __name__ == "__main__":
    main()
