"""The two local OCR engines side by side on the demo images: RapidOCR on ONNX Runtime (the Python package
`rapidocr_onnxruntime`) and Tesseract (Debian's `tesseract-ocr`, called as a program). For each image and
each way of feeding it (as stored, as generation/services/ocr.py does, or enlarged to a longer side
of 1,536 px): the median time of 3 runs after one warm-up, the words found with the engine's confidence ≥ 0.5
(RapidOCR's score, Tesseract's conf/100), and all the words it returned. A printed card (a known
sentence drawn with Pillow's own font) adds a word recall against known text.

    python bench/ocr_engines.py [--runs 3]

No database. An engine that is not installed is reported as missing, not measured.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "demo" / "images"
CARD_TEXT = [
    "Quarterly sales report 2024",
    "Total revenue rose by 12 percent",
    "Invoice number 48213 due on 5 May",
]
MIN_CONFIDENCE = 0.5
# The other way of feeding an image: enlarged (at most 3×) until its longer side is 1,536 px.
ENLARGE_TO = 1536
MAX_UPSCALE = 3


def enlarged(img: Image.Image, min_long: int, max_up: float) -> Image.Image:
    longest = max(img.size)
    if longest >= min_long:
        return img
    scale = min(max_up, min_long / longest)
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)


def printed_card() -> Image.Image:
    img = Image.new("RGB", (900, 260), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=36)
    for n, line in enumerate(CARD_TEXT):
        draw.text((30, 30 + n * 75), line, fill="black", font=font)
    return img


def rapid_engine():
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    import numpy

    engine = RapidOCR()

    def run(img: Image.Image) -> list[tuple[str, float]]:
        found, _ = engine(numpy.asarray(img.convert("RGB"))[:, :, ::-1])
        return [(str(text), float(score)) for _box, text, score in (found or [])]

    return run


def tesseract_engine():
    if not shutil.which("tesseract"):
        return None

    def run(img: Image.Image) -> list[tuple[str, float]]:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "PNG")
        out = subprocess.run(
            ["tesseract", "-", "-", "--psm", "3", "tsv"],
            input=buf.getvalue(),
            capture_output=True,
            check=True,
        ).stdout.decode()
        words = []
        for line in out.splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) == 12 and cols[11].strip() and float(cols[10]) >= 0:
                words.append((cols[11].strip(), float(cols[10]) / 100))
        return words

    return run


def words_of(found: list[tuple[str, float]], *, confident: bool) -> list[str]:
    return [w for text, score in found if not confident or score >= MIN_CONFIDENCE for w in text.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    engines = {"rapidocr": rapid_engine(), "tesseract": tesseract_engine()}
    images = {p.name: Image.open(p) for p in sorted(DEMO.iterdir()) if p.suffix in (".png", ".jpg")}
    images["printed_card (synthetic)"] = printed_card()
    for img in images.values():
        img.load()
    print(f"load average before: {os.getloadavg()}")
    totals: dict[tuple[str, str], list] = {}
    header = f"{'image':28} {'engine':10} {'input':9} {'median s':>8} {'words≥0.5':>9} {'all words':>9}  found (≥0.5)"
    print(header)
    for name, img in images.items():
        for engine_name, run in engines.items():
            if run is None:
                print(f"{name:28} {engine_name:10} not installed")
                continue
            for label, pixels in (("as stored", img), ("enlarged", enlarged(img, ENLARGE_TO, MAX_UPSCALE))):
                run(pixels)  # warm-up
                times, found = [], []
                for _ in range(args.runs):
                    started = time.monotonic()
                    found = run(pixels)
                    times.append(time.monotonic() - started)
                confident = words_of(found, confident=True)
                every = words_of(found, confident=False)
                median = statistics.median(times)
                totals.setdefault((engine_name, label), []).append(
                    (median, len(confident), len(every), confident)
                )
                shown = " ".join(confident)[:60]
                print(
                    f"{name:28} {engine_name:10} {label:9} {median:8.2f} {len(confident):9d} {len(every):9d}  {shown}"
                )
    print()
    card_words = {w.lower() for line in CARD_TEXT for w in line.split()}
    for (engine_name, label), rows in totals.items():
        seconds = sum(r[0] for r in rows)
        card = rows[-1][3]
        recall = len(card_words & {w.lower().strip(".,") for w in card}) / len(card_words)
        print(
            f"{engine_name:10} {label:9}: {seconds:6.2f} s for {len(rows)} images, "
            f"{sum(r[1] for r in rows[:-1])} confident words on the demo images "
            f"({sum(r[2] for r in rows[:-1])} in all), printed card recall {recall:.0%}"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
