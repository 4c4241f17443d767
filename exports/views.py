"""Pages of the exports app: list, new export, version detail with live progress, download, diff."""

from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.throttles import throttle
from exports.forms import ExportSpecForm
from exports.http import archive_response
from exports.models import ExportSpec, ExportVersion
from exports.permissions import can_build, exports_page
from exports.services import progress
from exports.services.diff import cached_diff, diff_as_json, iter_diff_csv
from exports.services.specs import ExportError, InvalidSpec, create_spec, request_build
from web import error_pages

DIFF_PAGE_ROWS = 500


def _versions():
    return ExportVersion.objects.select_related("spec", "built_by")


@require_GET
@exports_page()
def export_list(request):
    """Every export with its versions (status, size, counts, sha256). Two queries whatever the size."""
    specs = ExportSpec.objects.select_related("created_by").prefetch_related("versions__built_by")
    return render(request, "exports/list.html", {"specs": specs, "can_build": can_build(request.user)})


@require_http_methods(["GET", "POST"])
@exports_page(build=True)
@throttle("export_build")
def export_new(request):
    form = ExportSpecForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            spec = create_spec(form.cleaned_data["name"], by=request.user, **form.service_kwargs())
        except InvalidSpec as exc:
            for field, errors in exc.errors.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            version = request_build(spec, by=request.user)
            messages.success(request, f"Export {spec.name} created; {version.label} is queued.")
            return redirect("exports:version", pk=version.pk)
    return render(request, "exports/new.html", {"form": form}, status=400 if form.errors else 200)


@require_POST
@exports_page(build=True)
@throttle("export_build")
def export_build(request, pk: int):
    spec = get_object_or_404(ExportSpec, pk=pk)
    version = request_build(spec, by=request.user)
    messages.success(request, f"{spec.name} {version.label} is queued.")
    return redirect("exports:version", pk=version.pk)


@require_GET
@exports_page()
def version_detail(request, pk: int):
    version = get_object_or_404(_versions(), pk=pk)
    others = version.spec.versions.filter(status="done").exclude(pk=version.pk).only("id", "number")
    return render(
        request,
        "exports/version.html",
        {
            "version": version,
            "progress": progress.read(version.pk),
            "events": version.events.select_related("actor"),
            "others": others,
            "can_build": can_build(request.user),
        },
    )


@require_GET
@exports_page()
def version_progress(request, pk: int):
    """The htmx partial polled while a version builds."""
    version = get_object_or_404(_versions(), pk=pk)
    return render(
        request, "exports/_progress.html", {"version": version, "progress": progress.read(version.pk)}
    )


@require_GET
@exports_page()
def version_download(request, pk: int):
    version = get_object_or_404(_versions(), pk=pk)
    try:
        return archive_response(request, version)
    except ExportError as exc:
        return error_pages.conflict(request, str(exc), back_url=reverse("exports:version", args=[pk]))


@require_GET
@exports_page()
def version_diff(request, pk: int):
    """Diff of this version against ?against=<other version id>: a page, or ?format=json|csv."""
    new = get_object_or_404(_versions(), pk=pk)
    try:
        old = get_object_or_404(_versions(), pk=int(request.GET.get("against", "")))
    except ValueError:
        return HttpResponse("?against= must name another version's id", status=400, content_type="text/plain")
    if old.number > new.number:
        old, new = new, old
    try:
        diff = cached_diff(old, new)
    except ExportError as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain")
    fmt = request.GET.get("format", "")
    stem = f"{new.spec.name}-v{old.number}-v{new.number}-diff"
    if fmt == "json":
        response = HttpResponse(diff_as_json(diff), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{stem}.json"'
        return response
    if fmt == "csv":
        response = StreamingHttpResponse(iter_diff_csv(diff), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
        return response
    return render(
        request,
        "exports/diff.html",
        {
            "old": old,
            "new": new,
            "summary": diff.summary(),
            "changes": diff.changes[:DIFF_PAGE_ROWS],
            "more": max(0, len(diff.changes) - DIFF_PAGE_ROWS),
        },
    )
