"""Home pages, one per role: each shows the numbers that say where things stand and the next step."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import ADMIN, ANNOTATOR, RESEARCHER, role_required, roles_of
from accounts.throttles import throttle
from corpus.models import Domain, Image
from corpus.services import images as image_service
from exports import selectors as export_selectors
from generation import selectors as generation_selectors
from generation.services import jobs as job_service
from review import selectors as review_selectors
from review.session import chosen_domain_ids

from . import selectors

LATEST_EXPORTS = 5


def _admin(request) -> dict:
    exported: dict[str, int] = {}
    latest_done = export_selectors.latest_done_versions(limit=50)
    for version in latest_done:  # newest first: the latest build of any export per domain counts
        for slug, n in (version.counts.get("by_domain") or {}).items():
            exported[slug] = max(exported.get(slug, 0), n)
    failures = list(generation_selectors.recent_failures())
    failed_exports = list(export_selectors.failed_versions(limit=3))
    return {
        "funnel": selectors.funnel(exported),
        "active_jobs": list(generation_selectors.active_jobs()),
        "spend_today": generation_selectors.spend_since(selectors.start_of_today()),
        "failures": failures,
        "failed_exports": failed_exports,
        "n_failures": len(failures) + len(failed_exports),
    }


def _annotator(request) -> dict:
    chosen = chosen_domain_ids(request)
    pending = review_selectors.pending_counts()
    return {
        "queue": selectors.queue_by_domain(pending, chosen),
        "waiting": sum(pending.get(d, 0) for d in chosen) if chosen else sum(pending.values()),
        "chosen_any": bool(chosen),
        "held": review_selectors.leases_of(request.user),
        "today": selectors.decisions_today(request.user),
    }


def _researcher(request) -> dict:
    latest = []
    for spec, version in export_selectors.latest_version_per_spec(limit=LATEST_EXPORTS):
        matches = (
            export_selectors.preview_selection(spec.selection)["instructions"]
            if spec.selection is not None
            else 0
        )
        built = (version.counts or {}).get("instructions", 0) if version else 0
        latest.append(
            {
                "spec": spec,
                "version": version,
                "matches_now": matches,
                "difference": matches - built,
                "decided_since": selectors.decided_since(version.finished_at if version else None),
            }
        )
    return {"latest_exports": latest, "ready": selectors.ready_to_export()}


def home(request: HttpRequest) -> HttpResponse:
    """The landing page: one part per role the person holds (an admin sees the admin's part, which
    links to the others)."""
    held = roles_of(request.user)
    context: dict = {"roles": held}
    if ADMIN in held:
        context.update(_admin(request))
    else:
        if ANNOTATOR in held:
            context.update(_annotator(request))
        if RESEARCHER in held:
            context.update(_researcher(request))
    context["show_admin"] = ADMIN in held
    context["show_annotator"] = ADMIN not in held and ANNOTATOR in held
    context["show_researcher"] = ADMIN not in held and RESEARCHER in held
    return render(request, "studio/home.html", context)


# --- the image browser's bulk actions -------------------------------------------------------------------

BULK_MAX = 500


def _back(request) -> str:
    """Back to the image list the form was on (its filters and page), never to another site."""
    target = request.POST.get("next", "")
    return target if target.startswith("/images/") and "//" not in target else "/images/"


@role_required(ADMIN)
@require_POST
@throttle("job_launch")
def image_bulk(request: HttpRequest) -> HttpResponse:
    """Act on the images ticked in the browser: generate captions (a generation job on those images),
    move them to a domain, or send those with drafts to the review queue — each through its app's
    service. Bad input is a message on the page it came from, never a 500."""
    action = request.POST.get("action", "")
    ids = [int(v) for v in request.POST.getlist("ids") if v.isascii() and v.isdigit() and len(v) <= 18]
    if not ids:
        messages.error(request, "Tick at least one image first.")
        return redirect(_back(request))
    if len(ids) > BULK_MAX:
        messages.error(request, f"At most {BULK_MAX} images at once (you ticked {len(ids)}).")
        return redirect(_back(request))
    if action == "captions":
        slugs = sorted(set(Image.objects.filter(pk__in=ids).values_list("domain__slug", flat=True)))
        try:
            job = job_service.launch_job(
                stage="captions",
                by=request.user,
                domains=slugs,
                image_ids=ids,
                force=bool(request.POST.get("force")),
            )
        except job_service.NeedsConfirmation as e:
            messages.error(
                request,
                "Not launched: "
                + "; ".join(e.warnings)
                + ". Tick “launch even if the endpoint looks broken” "
                "to launch anyway.",
            )
            return redirect(_back(request))
        except job_service.LaunchError as e:
            messages.error(request, f"Not launched: {e}.")
            return redirect(_back(request))
        messages.success(
            request, f"Job {job.pk} queued: captions for {len(ids)} image{'s' if len(ids) != 1 else ''}."
        )
        return redirect("generation:job", pk=job.pk)
    if action == "move":
        domain = Domain.objects.filter(slug=request.POST.get("domain", "")[:100]).first()
        if domain is None:
            messages.error(request, "Choose the domain to move the images to.")
            return redirect(_back(request))
        result = image_service.move_images_to_domain(ids, domain=domain)
        skipped = f" {result.skipped} stayed (being reviewed right now, or gone)." if result.skipped else ""
        messages.success(
            request,
            f"Moved {result.changed} image{'s' if result.changed != 1 else ''} to {domain.name}.{skipped}",
        )
        return redirect(_back(request))
    if action == "review":
        result = image_service.queue_for_review(ids, by=request.user)
        skipped = (
            f" {result.skipped} had no drafts to review (or are being reviewed)." if result.skipped else ""
        )
        messages.success(
            request, f"{result.changed} image{'s' if result.changed != 1 else ''} queued for review.{skipped}"
        )
        return redirect(_back(request))
    messages.error(request, "Choose what to do with the ticked images.")
    return redirect(_back(request))
