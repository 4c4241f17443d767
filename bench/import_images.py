"""Benchmark: import a folder of N small generated images; print time and peak memory.

    DATABASE_URL=… python bench/import_images.py [N] [--tracemalloc]     (default N = 10,000)

Images go to a temp MEDIA_ROOT and a throwaway domain that is deleted at the end. Peak memory is
reported twice: tracemalloc's peak of Python allocations during the import, and the process's peak RSS.
"""

import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mminstruct_site.settings")


def make_images(folder: Path, n: int) -> None:
    import random

    from PIL import Image

    rng = random.Random(42)
    for i in range(n):
        # A random 8×6 grid of blocks: distinct perceptual hashes, so near-duplicates stay rare.
        grid = Image.new("RGB", (8, 6))
        grid.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(48)])
        img = grid.resize((96, 72), Image.Resampling.NEAREST)
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        img.save(sub / f"img-{i:05d}.png")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    trace = "--tracemalloc" in sys.argv
    n = int(args[0]) if args else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MEDIA_ROOT"] = str(Path(tmp) / "media")
        import django

        django.setup()
        from corpus.models import Domain, Image
        from corpus.services.imports import import_images, sources_from_paths

        folder = Path(tmp) / "images"
        folder.mkdir()
        t0 = time.perf_counter()
        make_images(folder, n)
        print(f"generated {n} images in {time.perf_counter() - t0:.1f} s")

        domain, _ = Domain.objects.get_or_create(slug="bench-import", defaults={"name": "Bench import"})
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if trace:
            tracemalloc.start()  # slows the import ~2×: time is only meaningful without --tracemalloc
        t0 = time.perf_counter()
        summary = import_images(sources_from_paths([folder]), domain=domain, source="bench")
        elapsed = time.perf_counter() - t0
        if trace:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"database: {django.db.connection.vendor}")
        print(
            f"imported {len(summary.imported)}, duplicates {len(summary.duplicates)}, "
            f"near-duplicates {len(summary.near_duplicates)}, rejected {len(summary.rejected)}"
        )
        print(f"import time: {elapsed:.1f} s ({n / elapsed:.0f} images/s)")
        if trace:
            print(f"tracemalloc peak during import: {peak / 1e6:.1f} MB")
        print(f"peak RSS: {rss_before / 1024:.0f} MB before the import, {rss_after / 1024:.0f} MB after")
        Image.objects.filter(domain=domain).delete()
        domain.delete()


if __name__ == "__main__":
    main()
