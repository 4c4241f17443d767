"""The ocr stage: fill each image's `ocr_text` with the text a local OCR engine finds in it.

The engine is RapidOCR on ONNX Runtime (the `rapidocr_onnxruntime` package, whose detection and
recognition models ship inside it: nothing is downloaded at run time), chosen over Tesseract by
measurement on the demo images (docs/generation.md, "OCR"; bench/ocr_engines.py). It is an optional
dependency (`pip install 'mminstruct-studio[ocr]'`): without it a launch is refused and a unit fails,
each saying what to install.

An OCR job is a generation job without endpoint or prompt: units (image × ocr × round, the unit key of
a local stage) are claimed with the same compare-and-swap and lease as the model stages, the engine runs
outside any transaction, and the text is written with the unit's running → done in one transaction —
so a redelivered chunk finds its units done, and an OCR text already there (typed at import, or found
by an earlier run) is never overwritten. Cost 0, tokens 0.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from importlib import metadata

from django.db import transaction
from PIL import Image as PILImage

from corpus.services import ocr as corpus_ocr

from ..models import GenerationJob, JobStatus
from . import units as unit_service

log = logging.getLogger(__name__)

ENGINE_PACKAGE = "rapidocr_onnxruntime"
INSTALL_HINT = (
    "the OCR engine is not installed: pip install 'mminstruct-studio[ocr]' (RapidOCR on ONNX Runtime)"
)
# Lines the recogniser is less sure of than this are noise on photographs (measured: bench/ocr_engines.py).
MIN_CONFIDENCE = 0.5
# One image takes well under a minute even on a busy machine; a unit held longer than this belongs to a
# dead worker and may be taken over.
LEASE_SECONDS = 300


class EngineMissing(RuntimeError):
    """The OCR package is not installed in this process."""


def engine_available() -> bool:
    try:
        metadata.version(ENGINE_PACKAGE)
    except metadata.PackageNotFoundError:
        return False
    return True


def engine_name() -> str:
    try:
        return f"{ENGINE_PACKAGE} {metadata.version(ENGINE_PACKAGE)}"
    except metadata.PackageNotFoundError:
        return f"{ENGINE_PACKAGE} (not installed)"


_lock = threading.Lock()


@functools.cache
def _engine():
    """One engine per process (loading the models takes ~0.1 s and some 100 MB)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise EngineMissing(f"{INSTALL_HINT} ({e})") from e
    return RapidOCR()


def prepare_pixels(img: PILImage.Image):
    """The image as the engine takes it: RGB, as a BGR numpy array, at its stored size (enlarging small
    images tripled the time and found no more on the demo images: docs/generation.md, "OCR")."""
    import numpy

    return numpy.asarray(img.convert("RGB"))[:, :, ::-1]


@dataclass(frozen=True)
class OcrResult:
    lines: list[str]
    latency_ms: int

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def read_text(fp) -> OcrResult:
    """The lines of text the engine finds in an image file (path or binary file), top to bottom, those
    it is at least MIN_CONFIDENCE sure of. Raises EngineMissing, or OSError/ValueError for a file that
    is not an image."""
    engine = _engine()
    with PILImage.open(fp) as img:
        img.load()
        pixels = prepare_pixels(img)
    started = time.monotonic()
    with _lock:  # one inference at a time per process: ONNX Runtime already uses every core
        found, _ = engine(pixels)
    latency_ms = int((time.monotonic() - started) * 1000)
    lines = [str(text).strip() for _box, text, score in (found or []) if float(score) >= MIN_CONFIDENCE]
    return OcrResult([line for line in lines if line], latency_ms)


def run_units(job: GenerationJob, unit_ids: list[int], result) -> None:
    """Run these OCR units of the job, one after the other (the engine uses the cores itself). Stops
    taking units when the job stops running; a unit another worker holds is reported in `result.held`."""
    for unit_id in unit_ids:
        if (
            GenerationJob.objects.filter(pk=job.pk).values_list("status", flat=True).first()
            != JobStatus.RUNNING
        ):
            result.stopped = True
            return
        claim = unit_service.claim_unit(unit_id, lease=LEASE_SECONDS)
        if claim.unit is None:
            if claim.held_until is not None:
                result.held[unit_id] = claim.held_until
            else:
                result.skipped += 1
            continue
        unit = claim.unit
        try:
            with unit.image.file.open("rb") as fh:
                found = read_text(fh)
        except EngineMissing as e:
            _fail(unit, claim.token, str(e), result)
            continue
        except Exception as e:  # an unreadable file, an engine error: this unit fails with the reason
            log.warning("OCR of unit %s failed: %s", unit_id, e)
            _fail(unit, claim.token, f"OCR failed: {type(e).__name__}: {e}", result)
            continue
        with transaction.atomic():
            done = unit_service.finish_unit(
                unit.pk,
                claim.token,
                fields={"attempts": 1, "latency_ms": found.latency_ms, "drafts": 0, "cost": 0},
            )
            wrote = done and found.lines and corpus_ocr.fill_ocr_text(unit.image_id, found.text)
            if wrote:
                type(unit).objects.filter(pk=unit.pk).update(drafts=1)
        if done:
            result.done += 1
        else:
            result.skipped += 1  # our lease ran out and another worker took the unit


def _fail(unit, token: str, error: str, result) -> None:
    if unit_service.fail_unit(unit, token, error=error, attempts=1, tokens_in=0, tokens_out=0, cost=0):
        result.failed += 1
