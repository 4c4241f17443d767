"""Job pages: the list with the launch form, a job's page, the progress partial it polls, the controls."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import ADMIN, role_required
from accounts.throttles import throttle

from .. import selectors
from ..forms import LaunchForm, error_messages
from ..models import GenerationJob
from ..services import jobs as job_service

CONTROLS = {
    "pause": job_service.pause_job,
    "resume": job_service.resume_job,
    "cancel": job_service.cancel_job,
}


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
                job = job_service.launch_job(
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
            except job_service.NeedsConfirmation as e:
                status, warnings = 409, e.warnings
                resubmit = [
                    (key, value)
                    for key, values in request.POST.lists()
                    if key not in ("csrfmiddlewaretoken", "force")
                    for value in values
                ]
            except job_service.LaunchError as e:
                form.add_error(e.field if e.field in form.fields else None, str(e))
            else:
                messages.success(request, f"Job {job.pk} queued.")
                return redirect("generation:job", pk=job.pk)
        if form.errors:
            status = 400
            for line in error_messages(form):
                messages.error(request, f"Not launched. {line}")
    context = {
        "form": form,
        "jobs": selectors.jobs_with_counts()[:50],
        "warnings": warnings,
        "resubmit": resubmit,
    }
    return render(request, "generation/job_list.html", context, status=status)


def _progress_context(job: GenerationJob) -> dict:
    return {"job": job, "p": selectors.progress(job), "errors": selectors.latest_errors(job)}


@role_required(ADMIN)
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.jobs_for_pages(), pk=pk)
    context = {
        "invalid": selectors.invalid_output(job),
        "events": selectors.job_events(job),
        "controls": selectors.allowed_controls(job),
        "in_words": selectors.job_in_words(job),
        "drafted": selectors.units_with_drafts(job),
        "failures": selectors.latest_errors(job, limit=50),
        **_progress_context(job),
    }
    return render(request, "generation/job_detail.html", context)


@role_required(ADMIN)
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The htmx partial the job page polls: bar, counts, rate, ETA, cost, latest errors. Reads only."""
    job = get_object_or_404(selectors.jobs_for_pages(), pk=pk)
    return render(request, "generation/_progress.html", _progress_context(job))


@role_required(ADMIN)
@require_POST
def job_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Pause, resume or cancel; a control the job's status does not allow is a message, not an error."""
    do = CONTROLS.get(action)
    if do is None:
        return HttpResponse(status=404)
    job = get_object_or_404(GenerationJob, pk=pk)
    if do(job, by=request.user):
        messages.success(request, f"Job {job.pk}: {action} done.")
    else:
        messages.error(request, f"Job {job.pk} is {job.status}: cannot {action} it.")
    return redirect("generation:job", pk=job.pk)
