"""Home pages, one per role: each shows the numbers that say where things stand and the next step."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.roles import ADMIN, ANNOTATOR, RESEARCHER, roles_of
from exports import selectors as export_selectors
from generation import selectors as generation_selectors
from review.services import queue as review_queue
from review.views.work import SESSION_DOMAINS

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
    chosen = [int(d) for d in request.session.get(SESSION_DOMAINS, [])]
    pending = review_queue.pending_counts()
    return {
        "queue": selectors.queue_by_domain(pending, chosen),
        "waiting": sum(pending.get(d, 0) for d in chosen) if chosen else sum(pending.values()),
        "chosen_any": bool(chosen),
        "held": review_queue.leases_of(request.user),
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
