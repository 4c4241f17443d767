"""Stored files behind the role check: which media paths have a URL, and how a checked request gets its
bytes — from nginx (`X-Accel-Redirect` to an `internal` location) or streamed by Django.

Only the two folders images are stored in have URLs (`images/`, `thumbs/`, see corpus.models): nothing
else under MEDIA_ROOT — an old upload-staging folder included — and nothing outside it is ever served.
Exports use `accel_response` for their archives too (exports/http.py)."""

import mimetypes
import posixpath
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date

SERVED_FOLDERS = ("images/", "thumbs/")
# Content-addressed (the name is the sha256), so a browser may keep it; only the browser (private).
CACHE_CONTROL = "private, max-age=86400"


def media_path(relative: str) -> tuple[str, Path]:
    """The normalised relative path and the file of a media URL's path; Http404 for anything that is not
    a stored image or thumbnail (traversal, absolute paths, other folders, missing files)."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        raise Http404("No such file.")
    normal = posixpath.normpath(relative)
    if normal != relative or normal.startswith("..") or not normal.startswith(SERVED_FOLDERS):
        raise Http404("No such file.")
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / normal).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404("No such file.")
    return normal, path


def content_type_of(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def accel_response(prefix: str, relative: str, *, content_type: str) -> HttpResponse:
    """An empty response that tells nginx to send `relative` from its `internal` location `prefix`."""
    response = HttpResponse(content_type=content_type)
    response["X-Accel-Redirect"] = quote(prefix.rstrip("/") + "/" + relative.lstrip("/"))
    response["X-Content-Type-Options"] = "nosniff"
    return response


def media_response(request, relative: str) -> HttpResponse:
    """The stored image or thumbnail at `relative`, for a request whose role was checked already."""
    normal, path = media_path(relative)
    content_type = content_type_of(path)
    if settings.MEDIA_ACCEL_REDIRECT:
        response = accel_response(settings.MEDIA_ACCEL_REDIRECT, normal, content_type=content_type)
        response["Cache-Control"] = CACHE_CONTROL
        return response
    stat = path.stat()
    etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    not_modified = get_conditional_response(request, etag=etag, last_modified=int(stat.st_mtime))
    if not_modified is not None:
        not_modified["Cache-Control"] = CACHE_CONTROL
        return not_modified
    response = FileResponse(open(path, "rb"), content_type=content_type)  # noqa: SIM115 - closed by Django
    response["ETag"] = etag
    response["Last-Modified"] = http_date(stat.st_mtime)
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    return response
