"""Pages of the generation app (admins only): jobs with live progress, launch, endpoints, prompts, costs."""

from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from corpus.models import Instruction, ItemStatus
from corpus.roles import ADMIN, role_required

from . import services
from .forms import LaunchForm, PromptForm
from .models import Endpoint, GenerationJob, PromptTemplate, UnitStatus
from .services import endpoints as endpoint_service
from .services import jobs as job_service


def jobs_with_counts():
    return GenerationJob.objects.select_related("endpoint", "launched_by").annotate(
        n_units=Count("units"),
        n_done=Count("units", filter=Q(units__status=UnitStatus.DONE)),
        n_failed=Count("units", filter=Q(units__status=UnitStatus.FAILED)),
    )


@role_required(ADMIN)
def job_list(request: HttpRequest) -> HttpResponse:
    form = LaunchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = services.launch_job(
                stage=data["stage"],
                by=request.user,
                domains=[d.slug for d in data["domains"]],
                endpoint_name=data["endpoint"].name if data["endpoint"] else None,
                statuses=data["statuses"],
                limit=data["limit"],
                include_drafts=data["include_drafts"],
                types=data["types"] or None,
                n_per_type=data["n_per_type"],
                seeds_per_prompt=data["seeds_per_prompt"],
            )
        except services.LaunchError as e:
            form.add_error(None, str(e))
        else:
            messages.success(request, f"Job {job.pk} queued.")
            return redirect("generation:job", pk=job.pk)
    jobs = jobs_with_counts()[:50]
    return render(request, "generation/job_list.html", {"form": form, "jobs": jobs})


@role_required(ADMIN)
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(GenerationJob.objects.select_related("endpoint", "launched_by"), pk=pk)
    unit_ids = job.units.values("pk")
    invalid = (
        Instruction.objects.filter(generation_unit_id__in=unit_ids, status=ItemStatus.INVALID)
        .select_related("image")
        .order_by("-id")[:50]
    )
    context = {
        "job": job,
        "invalid": invalid,
        "events": job.events.select_related("actor"),
        **_progress_context(job),
    }
    return render(request, "generation/job_detail.html", context)


def _progress_context(job: GenerationJob) -> dict:
    return {
        "job": job,
        "p": services.progress(job),
        "errors": job_service.latest_errors(job).select_related("image"),
    }


@role_required(ADMIN)
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The htmx partial the job page polls: bar, counts, rate, ETA, cost, latest errors."""
    job = get_object_or_404(GenerationJob.objects.select_related("endpoint"), pk=pk)
    job_service.check_progress(job)
    job.refresh_from_db()
    return render(request, "generation/_progress.html", _progress_context(job))


@role_required(ADMIN)
@require_POST
def job_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    job = get_object_or_404(GenerationJob, pk=pk)
    do = {"pause": services.pause_job, "resume": services.resume_job, "cancel": services.cancel_job}.get(
        action
    )
    if do is None:
        return HttpResponse(status=404)
    if do(job, by=request.user):
        messages.success(request, f"Job {job.pk}: {action} done.")
    else:
        messages.error(request, f"Job {job.pk} is {job.status}: cannot {action} it.")
    return redirect("generation:job", pk=job.pk)


@role_required(ADMIN)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    endpoints = list(Endpoint.objects.all())
    for endpoint in endpoints:
        endpoint.key_set = endpoint_service.key_is_set(endpoint)
    return render(
        request, "generation/endpoints.html", {"endpoints": endpoints, "embedded": settings.EMBEDDED_MODE}
    )


@role_required(ADMIN)
@require_POST
def endpoint_make_default(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    endpoint_service.make_default(endpoint)
    messages.success(request, f"{endpoint.name} is now the default {endpoint.kind} endpoint.")
    return redirect("generation:endpoints")


@role_required(ADMIN)
def prompt_list(request: HttpRequest) -> HttpResponse:
    services.ensure_default_prompts()
    templates = PromptTemplate.objects.select_related("domain", "created_by").order_by(
        "kind", "instruction_type", "domain__slug", "-version"
    )
    return render(request, "generation/prompts.html", {"templates": templates})


@role_required(ADMIN)
def prompt_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Edit a template: saving makes a new version (placeholders are checked first)."""
    base = get_object_or_404(PromptTemplate.objects.select_related("domain"), pk=pk) if pk else None
    initial = {}
    if base:
        initial = {
            "kind": base.kind,
            "domain": base.domain.slug if base.domain_id else None,
            "instruction_type": base.instruction_type,
            "text": base.text,
        }
    form = PromptForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            template = services.save_template(
                kind=data["kind"],
                text=data["text"],
                by=request.user,
                domain=data["domain"],
                instruction_type=data["instruction_type"],
                note=data["note"],
            )
        except services.TemplateError as e:
            form.add_error("text", str(e))
        else:
            messages.success(request, f"Saved {template}.")
            return redirect("generation:prompts")
    return render(request, "generation/prompt_edit.html", {"form": form, "base": base})


@role_required(ADMIN)
def costs(request: HttpRequest) -> HttpResponse:
    return render(request, "generation/costs.html", job_service.cost_totals())
