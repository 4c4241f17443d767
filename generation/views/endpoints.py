"""Endpoint pages: the list (with whether each key variable is set), make one the default, test one."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import ADMIN, role_required

from .. import selectors
from ..models import Endpoint
from ..services import endpoints as endpoint_service


@role_required(ADMIN)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    context = {
        "endpoints": selectors.endpoints_with_key_state(),
        "embedded": settings.EMBEDDED_MODE,
        "key_pattern": settings.GENERATION_API_KEY_ENV_PATTERN,
        "allow_private": settings.GENERATION_ALLOW_PRIVATE_ENDPOINTS,
    }
    return render(request, "generation/endpoints.html", context)


@role_required(ADMIN)
@require_POST
def endpoint_make_default(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    endpoint_service.make_default(endpoint)
    messages.success(request, f"{endpoint.name} is now the default {endpoint.kind} endpoint.")
    return redirect("generation:endpoints")


@role_required(ADMIN)
@require_POST
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Test connection: one cheap call; the result is shown as a message and kept on the endpoint."""
    endpoint = get_object_or_404(Endpoint, pk=pk)
    report = endpoint_service.record_test(endpoint)
    where = f"{report.url} (model {report.model})"
    status = report.status if report.status is not None else "no answer"
    if report.ok:
        messages.success(request, f"{endpoint.name}: OK — {where}, HTTP {status}, {report.latency_ms} ms.")
    else:
        messages.error(
            request,
            f"{endpoint.name}: FAILED — {where}, HTTP {status}, {report.latency_ms} ms: {report.error}",
        )
    return redirect("generation:endpoints")
