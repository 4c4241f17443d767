"""Pages of the generation app (admins only): jobs with live progress, launch, endpoints, prompts, costs.

GETs only read (the progress partial included); recovery of dead workers' work is Celery beat's sweep."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import ADMIN, role_required
from accounts.throttles import throttle
from corpus.models import Instruction, ItemStatus

from . import services
from .forms import LaunchForm, PromptForm, error_messages
from .models import Endpoint, GenerationJob, PromptTemplate
from .services import endpoints as endpoint_service
from .services import jobs as job_service
from .services import reports


def jobs_with_counts():
    return reports.annotated_jobs()


@role_required(ADMIN)
@throttle("job_launch")
def job_list(request: HttpRequest) -> HttpResponse:
    """The jobs and the launch form. A launch on an endpoint known to be broken (key variable not set,
    last connection test failed) shows what is wrong and asks for confirmation (409) before it goes."""
    form = LaunchForm(request.POST or None)
    status, warnings, resubmit = 200, [], []
    if request.method == "POST":
        if form.is_valid():
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
                    force=data["force"],
                )
            except services.NeedsConfirmation as e:
                status, warnings = 409, e.warnings
                resubmit = [
                    (key, value)
                    for key, values in request.POST.lists()
                    if key not in ("csrfmiddlewaretoken", "force")
                    for value in values
                ]
            except services.LaunchError as e:
                form.add_error(e.field if e.field in form.fields else None, str(e))
            else:
                messages.success(request, f"Job {job.pk} queued.")
                return redirect("generation:job", pk=job.pk)
        if form.errors:
            status = 400
            for line in error_messages(form):
                messages.error(request, f"Not launched. {line}")
    jobs = jobs_with_counts().order_by("-id")[:50]
    context = {"form": form, "jobs": jobs, "warnings": warnings, "resubmit": resubmit}
    return render(request, "generation/job_list.html", context, status=status)


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
        "errors": job_service.latest_errors(job),
    }


@role_required(ADMIN)
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The htmx partial the job page polls: bar, counts, rate, ETA, cost, latest errors. Reads only."""
    job = get_object_or_404(GenerationJob.objects.select_related("endpoint"), pk=pk)
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
        request,
        "generation/endpoints.html",
        {
            "endpoints": endpoints,
            "embedded": settings.EMBEDDED_MODE,
            "key_pattern": settings.GENERATION_API_KEY_ENV_PATTERN,
            "allow_private": settings.GENERATION_ALLOW_PRIVATE_ENDPOINTS,
        },
    )


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


@role_required(ADMIN)
def prompt_list(request: HttpRequest) -> HttpResponse:
    # Reads only: the shipped prompts come with migration 0002 (and a launch makes any that are missing).
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
    status = 200
    if form.errors:
        status = 400
        for line in error_messages(form):
            messages.error(request, f"Not saved. {line}")
    return render(request, "generation/prompt_edit.html", {"form": form, "base": base}, status=status)


@role_required(ADMIN)
def costs(request: HttpRequest) -> HttpResponse:
    context = {
        **job_service.cost_totals(),
        "recent_regenerations": reports.recent_regenerations(),
        "quota": settings.REGENERATION_HOURLY_QUOTA,
    }
    return render(request, "generation/costs.html", context)
