"""The dataset import page (admins): an uploaded dataset is staged and imported by a worker; the page of
one import shows its progress, then its summary."""

from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from accounts.roles import ADMIN, role_required

from ..forms import DatasetImportForm
from ..models import DatasetImport
from ..services.dataset_import import Summary, stage_dataset_upload
from .imports import upload_limit_message


@csrf_exempt
@role_required(ADMIN)
def dataset_import(request):
    """GET: the form and the recent imports. POST: stage the upload and go to its page."""
    try:
        if request.method == "POST":
            request.FILES  # noqa: B018 - parses the body: the limits are checked here
    except (TooManyFilesSent, RequestDataTooBig) as exc:
        return _page(request, DatasetImportForm(), limit_error=exc)
    return _dataset_import(request)


@csrf_protect
def _dataset_import(request):
    if request.method != "POST":
        return _page(request, DatasetImportForm())
    form = DatasetImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, form)
    data = form.cleaned_data
    staged = stage_dataset_upload(
        data["data"],
        images_upload=data.get("images"),
        format=data["format"],
        domain=data["domain"],
        name=data["name"],
        status=data["status"],
        by=request.user,
    )
    return redirect("dataset-import-detail", pk=staged.pk)


def _page(request, form, *, limit_error=None):
    if limit_error is not None:
        status = 413 if isinstance(limit_error, RequestDataTooBig) else 400
    else:
        status = 400 if form.errors else 200
    return render(
        request,
        "corpus/dataset_import.html",
        {
            "form": form,
            "limit_error": upload_limit_message(limit_error) if limit_error is not None else "",
            "recent": DatasetImport.objects.select_related("domain").order_by("-id")[:10],
        },
        status=status,
    )


@role_required(ADMIN)
def dataset_import_detail(request, pk: int):
    """One import: its status and progress while a worker runs it (htmx polls), then its summary."""
    found = get_object_or_404(DatasetImport.objects.select_related("domain", "created_by"), pk=pk)
    template = (
        "corpus/_dataset_import.html"
        if request.headers.get("HX-Request")
        else "corpus/dataset_import_detail.html"
    )
    summary = Summary.from_dict(found.summary) if found.summary else None
    by_type = sorted(summary.by_type.items()) if summary else []
    return render(request, template, {"item": found, "summary": summary, "by_type": by_type})
