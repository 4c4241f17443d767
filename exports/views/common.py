"""What every exports page shares: the role check, and the answer to a request a service refused."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from exports.permissions import can_build, can_read
from exports.services.specs import ExportError
from web import error_pages
from web.api_errors import mapped_status


def exports_page(*, build: bool = False, back: str = "") -> Callable:
    """Page decorator: anonymous → login, a role that may not read (or build) exports → 403. A domain
    error the view lets through is answered as the API answers it (API_ERROR_STATUS: ExportError 409,
    InvalidRequest 400), as a page with the reason — and, for a 409, a link `back` (the name of a URL
    taking the view's `pk`)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            allowed = can_build(request.user) if build else can_read(request.user)
            if not allowed:
                raise PermissionDenied("Your role does not allow this.")
            try:
                return view(request, *args, **kwargs)
            except ExportError as exc:
                back_url = reverse(back, args=[kwargs["pk"]]) if back and "pk" in kwargs else ""
                return refused_page(request, exc, back_url=back_url)

        return wrapped

    return decorator


def refused_page(request, exc: ExportError, *, back_url: str = "") -> HttpResponse:
    """The error page for a domain error, with the status API_ERROR_STATUS gives its class."""
    if mapped_status(exc) == 400:
        return render(request, "400.html", {"detail": str(exc), "status": 400}, status=400)
    return error_pages.conflict(request, str(exc), back_url=back_url)
