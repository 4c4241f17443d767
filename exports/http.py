"""The responses the pages and the API share. Serving an archive: a streamed FileResponse with its sha256
in ETag / Digest headers, and single byte ranges (resumable downloads) — or, behind nginx
(EXPORTS_ACCEL_REDIRECT), an X-Accel-Redirect to its `internal` location, which sends the bytes and the
ranges; either way after the role check and the archive check. No other URL reaches a file under
EXPORTS_ROOT. And a diff as a JSON or CSV download."""

import base64
import logging
import re

from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse

from corpus.media import accel_response
from exports.models import ExportVersion
from exports.selectors import (
    ArchiveMismatch,
    Diff,
    archive_name,
    check_archive,
    diff_as_json,
    diff_file_stem,
    iter_diff_csv,
)

log = logging.getLogger(__name__)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 20


def _digest_headers(response, version: ExportVersion) -> None:
    response["ETag"] = f'"{version.sha256}"'
    encoded = base64.b64encode(bytes.fromhex(version.sha256)).decode()
    response["Digest"] = f"sha-256={encoded}"  # RFC 3230, still what most clients check
    response["Repr-Digest"] = f"sha-256=:{encoded}:"  # RFC 9530, its successor
    response["X-Checksum-SHA256"] = version.sha256
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private"  # behind the role check: no shared cache may keep it
    response["X-Content-Type-Options"] = "nosniff"


def _iter_range(path, start: int, length: int):
    with open(path, "rb") as fp:
        fp.seek(start)
        while length > 0:
            chunk = fp.read(min(_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def archive_response(request, version: ExportVersion):
    """The archive as a download. A whole-file request is checked against the recorded sha256 first
    (EXPORTS_VERIFY_ON_DOWNLOAD); a range request checks the size (the client checks the whole file
    against the ETag / Digest it got). Raises ExportError (not built, or the file no longer matches
    its sha256): the API answers 409 (API_ERROR_STATUS), the page a 409 page."""
    range_header = request.headers.get("Range", "")
    full_check = settings.EXPORTS_VERIFY_ON_DOWNLOAD and not range_header
    try:
        path = check_archive(version, full=full_check)
    except ArchiveMismatch as exc:
        log.error("refusing download: %s", exc)
        raise ArchiveMismatch(f"{exc}. An admin must look at the export folder.") from exc
    if settings.EXPORTS_ACCEL_REDIRECT:
        response = accel_response(
            settings.EXPORTS_ACCEL_REDIRECT, version.file_path, content_type="application/x-tar"
        )
        response["Content-Disposition"] = f'attachment; filename="{archive_name(version)}"'
        _digest_headers(response, version)
        return response
    size = version.size_bytes
    match = _RANGE.match(range_header.strip()) if range_header else None
    if range_header and match and (match.group(1) or match.group(2)):
        first, last = match.groups()
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        else:  # the last N bytes
            start = max(size - int(last), 0)
            end = size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = StreamingHttpResponse(_iter_range(path, start, end - start + 1), status=206)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
        response["Content-Type"] = "application/x-tar"
        response["Content-Disposition"] = f'attachment; filename="{archive_name(version)}"'
        _digest_headers(response, version)
        return response
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=archive_name(version))  # noqa: SIM115
    response["Content-Type"] = "application/x-tar"
    _digest_headers(response, version)
    return response


def diff_download(diff: Diff, fmt: str) -> HttpResponse:
    """The diff as a file to save: "json" (summary and changes) or "csv" (the changes, streamed)."""
    if fmt == "csv":
        response = StreamingHttpResponse(iter_diff_csv(diff), content_type="text/csv")
    else:
        response = HttpResponse(diff_as_json(diff), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{diff_file_stem(diff)}.{fmt}"'
    return response
