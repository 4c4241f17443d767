"""Django's error handlers (handler400/403/404/500, CSRF failures, 429): styled pages inside the site
layout that say what the person may do instead — and, on /api/ paths, the API's JSON error body, so an
error Django raises before DRF runs (an unknown URL, a body over the size limit, a 500) is JSON too."""

from __future__ import annotations

import logging

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils import timezone

from .api_errors import error_body, limit_error

log = logging.getLogger(__name__)

API_PREFIX = "/api/"


def is_api(request: HttpRequest | None) -> bool:
    return request is not None and request.path.startswith(API_PREFIX)


def _answer(request, status: int, template: str, detail: str, context: dict | None = None) -> HttpResponse:
    if is_api(request):
        return JsonResponse(error_body(detail), status=status)
    body = loader.render_to_string(template, {"detail": detail, "status": status, **(context or {})}, request)
    return HttpResponse(body, status=status)


def bad_request(request, exception=None):
    """handler400: malformed requests and Django's request limits (a body too large, too many files:
    413 with the limit named)."""
    status, detail = 400, "The request could not be understood."
    if isinstance(exception, SuspiciousOperation):
        status, detail = limit_error(exception)
    return _answer(request, status, "400.html", detail)


def permission_denied(request, exception=None):
    """handler403: a role that does not allow the page."""
    detail = str(exception) if exception and str(exception) else "Your role does not allow this page."
    return _answer(request, 403, "403.html", detail)


def conflict(request, detail: str, *, back_url: str = "") -> HttpResponse:
    """A 409 for a page whose service refused because of the state of things (an export not built yet, an
    archive that no longer matches its checksum): the reason, and the way back."""
    return _answer(request, 409, "409.html", detail, {"back_url": back_url})


def page_not_found(request, exception=None):
    """handler404. Django's message may be a resolver dict; the path is enough."""
    detail = f"Nothing is at {request.path}."
    if is_api(request):
        detail = f"Not found: no API resource at {request.path}."
    return _answer(request, 404, "404.html", detail, {"request_path": request.path})


def server_error(request):
    """handler500. Rendered without the request's context processors (they read the database, which may
    be what failed) — the layout shows no navigation then, only the way home."""
    detail = (
        "Server error: the problem was logged. Try again in a moment; if it keeps happening, tell an admin."
    )
    if is_api(request):
        return JsonResponse(error_body(detail), status=500)
    try:
        body = loader.render_to_string("500.html", {"detail": detail, "status": 500, "at": timezone.now()})
    except Exception:  # the template layer itself is broken: a plain page beats a second 500
        log.exception("the 500 page could not be rendered")
        body = "<!doctype html><title>Server error</title><h1>Server error</h1><p>Try again in a moment.</p>"
    return HttpResponse(body, status=500)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: usually a form left open past the session, or cookies turned off."""
    detail = (
        "The form was refused because its security token is missing or out of date "
        "(this happens when a page stays open across a log-in or log-out)."
    )
    return _answer(request, 403, "403_csrf.html", detail, {"reason": reason})


def too_many_requests(request, wait: float | None) -> HttpResponse:
    """429 for pages and for the API, with Retry-After (seconds, rounded up)."""
    seconds = max(1, int(-(-wait // 1))) if wait else None
    detail = "Too many requests" + (f": try again in {seconds} s." if seconds else ": try again later.")
    response = _answer(request, 429, "429.html", detail, {"retry_after": seconds})
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
