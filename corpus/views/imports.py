"""The image import page (admin): small uploads imported within the request, large ones and zips staged
for a worker; and the page of one import batch."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from accounts.roles import ADMIN, role_required

from ..forms import ImportForm
from ..models import ImportBatch
from ..services.import_batches import needs_background, stage_upload
from ..services.imports import import_images, sources_from_uploads


def upload_limit_message(exc: Exception) -> str:
    """What to tell a person whose upload broke a request limit (too many files, too large)."""
    if isinstance(exc, TooManyFilesSent):
        return (
            f"This upload holds more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files "
            "(DATA_UPLOAD_MAX_NUMBER_FILES). Put the images in a .zip archive, or upload them in parts."
        )
    return (
        "The form fields of this upload are larger than the server accepts "
        f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes, DATA_UPLOAD_MAX_MEMORY_SIZE); the files themselves "
        "are not limited by it."
    )


@csrf_exempt
@role_required(ADMIN)
def image_import(request):
    """Small uploads are imported inside the request; large ones (or zips) are staged for a worker."""
    try:
        if request.method == "POST":
            request.FILES  # noqa: B018 - parses the body: the limits are checked here
    except (TooManyFilesSent, RequestDataTooBig) as exc:
        return _image_import_page(request, ImportForm(None), limit_error=exc)
    return _image_import(request)


@csrf_protect
def _image_import(request):
    summary = None
    data, files = (request.POST, request.FILES.getlist("files")) if request.method == "POST" else (None, [])
    form = ImportForm(data)
    if request.method == "POST":
        if not files:
            form.add_error(None, "Choose at least one image or .zip file.")
        if form.is_valid():
            fields = {
                "domain": form.cleaned_data["domain"],
                "by": request.user,
                "source": form.cleaned_data["source"],
                "license": form.cleaned_data["license"],
                "prior_knowledge": form.cleaned_data["prior_knowledge"],
            }
            if needs_background(files):
                batch = stage_upload(files, **fields)
                return redirect("image-import-batch", pk=batch.pk)
            summary = import_images(sources_from_uploads(files), **fields).as_dict()
    return _image_import_page(request, form, summary=summary)


def _image_import_page(request, form, *, summary=None, limit_error=None):
    if limit_error is not None:
        status = 413 if isinstance(limit_error, RequestDataTooBig) else 400
    else:
        status = 400 if form.errors else 200
    return render(
        request,
        "corpus/image_import.html",
        {
            "form": form,
            "summary": summary,
            "limit_error": upload_limit_message(limit_error) if limit_error is not None else "",
            "max_pixels": f"{settings.IMAGE_MAX_PIXELS:,}",
            "max_mb": settings.IMAGE_MAX_BYTES // (1024 * 1024),
            "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
            "recent_batches": ImportBatch.objects.select_related("domain").order_by("-id")[:5],
        },
        status=status,
    )


@role_required(ADMIN)
def import_batch_detail(request, pk: int):
    """A staged upload: its status while the worker imports it, then its summary. htmx polls it."""
    batch = get_object_or_404(ImportBatch.objects.select_related("domain", "created_by"), pk=pk)
    template = (
        "corpus/_import_batch.html" if request.headers.get("HX-Request") else "corpus/import_batch.html"
    )
    return render(
        request, template, {"batch": batch, "summary": batch.summary if batch.is_finished else None}
    )
