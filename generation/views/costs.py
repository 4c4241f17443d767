"""The cost page: tokens and spend by job, endpoint and day, and the regenerations people asked for."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.roles import ADMIN, role_required

from .. import selectors


@role_required(ADMIN)
def costs(request: HttpRequest) -> HttpResponse:
    context = {
        **selectors.cost_totals(),
        "recent_regenerations": selectors.recent_regenerations(),
        "quota": settings.REGENERATION_HOURLY_QUOTA,
    }
    return render(request, "generation/costs.html", context)
