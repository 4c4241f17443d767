"""Pages about exports: the list with every version, the form that creates one, building the next version."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.throttles import throttle
from exports import selectors
from exports.forms import ExportSpecForm
from exports.permissions import can_build
from exports.services.specs import InvalidSpec, create_spec, request_build

from .common import exports_page


@require_GET
@exports_page()
def export_list(request):
    """Every export with its versions (status, size, counts, sha256). Three queries whatever the size."""
    return render(
        request,
        "exports/list.html",
        {"specs": selectors.specs_with_versions(), "can_build": can_build(request.user)},
    )


@require_http_methods(["GET", "POST"])
@exports_page(build=True)
@throttle("export_build")
def export_new(request):
    form = ExportSpecForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            spec = create_spec(form.cleaned_data["name"], by=request.user, **form.service_kwargs())
        except InvalidSpec as exc:
            # Not an error page: the form comes back with each reason beside its field.
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
    spec = get_object_or_404(selectors.specs(), pk=pk)
    version = request_build(spec, by=request.user)
    messages.success(request, f"{spec.name} {version.label} is queued.")
    return redirect("exports:version", pk=version.pk)
