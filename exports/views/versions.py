"""Pages about one version: its detail with live progress (an htmx partial), its download, its diff
against another version of the same export."""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from exports import selectors
from exports.http import archive_response, diff_download
from exports.permissions import can_build

from .common import exports_page

DIFF_PAGE_ROWS = 500


@require_GET
@exports_page()
def version_detail(request, pk: int):
    version = get_object_or_404(selectors.versions(), pk=pk)
    return render(
        request,
        "exports/version.html",
        {
            "version": version,
            "progress": selectors.progress_of(version),
            "events": selectors.history(version),
            "others": selectors.comparable_versions(version),
            "identical": selectors.identical_earlier(version),
            "can_build": can_build(request.user),
        },
    )


@require_GET
@exports_page()
def version_progress(request, pk: int):
    """The htmx partial polled while a version builds."""
    version = get_object_or_404(selectors.versions(), pk=pk)
    return render(
        request, "exports/_progress.html", {"version": version, "progress": selectors.progress_of(version)}
    )


@require_GET
@exports_page(back="exports:version")
def version_download(request, pk: int):
    """The archive (ranges, sha256 headers); an unbuilt or altered one is a 409 page."""
    return archive_response(request, get_object_or_404(selectors.versions(), pk=pk))


@require_GET
@exports_page(back="exports:version")
def version_diff(request, pk: int):
    """Diff of this version against ?against=<other version id>: a page, or ?format=json|csv."""
    version = get_object_or_404(selectors.versions(), pk=pk)
    diff = selectors.diff_against(version, request.GET.get("against"))
    fmt = request.GET.get("format", "")
    if fmt in ("json", "csv"):
        return diff_download(diff, fmt)
    return render(
        request,
        "exports/diff.html",
        {
            "old": diff.old,
            "new": diff.new,
            "summary": diff.summary(),
            "changes": diff.changes[:DIFF_PAGE_ROWS],
            "more": max(0, len(diff.changes) - DIFF_PAGE_ROWS),
        },
    )
