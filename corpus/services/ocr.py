"""The OCR text of an image: filled once by the ocr stage (generation/services/ocr.py), never over a
text someone or something already put there."""

from ..models import Image


def fill_ocr_text(image_id: int, text: str) -> bool:
    """Set the image's ocr_text if it is still empty (compare-and-swap: an OCR text typed at import, or
    written by another run meanwhile, is kept). True if this call wrote it. Idempotent."""
    return bool(Image.objects.filter(pk=image_id, ocr_text="").update(ocr_text=text))
