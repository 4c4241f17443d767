"""Pages for reading what review produced: item histories (annotators and researchers), the second
pass and its disagreements, the statistics of corrections (admins)."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.roles import ADMIN, ANNOTATOR, RESEARCHER, role_required
from corpus.models import ItemStatus

from .. import selectors
from ..services import quality_stats, second_pass, stats
from .work import item_or_404

# --- history (annotators and researchers read it) ------------------------------------------------------


@role_required(ANNOTATOR, RESEARCHER)
@require_GET
def item_history(request, kind: str, item_id: int):
    item = item_or_404(kind, item_id)
    template = "review/_history.html" if request.headers.get("HX-Request") else "review/history.html"
    return render(request, template, {"item": item, "kind": kind, "history": selectors.item_history(item)})


# --- second pass ---------------------------------------------------------------------------------------


@role_required(ANNOTATOR)
@require_http_methods(["GET", "POST"])
def second_pass_queue(request):
    if request.method == "POST":
        claimed = second_pass.claim_second_pass(request.user)
        if claimed is None:
            messages.info(request, "No reviewed image is waiting for a second look by you.")
            return redirect("review:second_pass")
        return redirect("review:second_pass_image", pass_id=claimed.pk)
    # The first reviewer sees where a second reviewer disagreed with them: the feedback loop.
    about_me = list(selectors.disagreements().filter(second_pass__first_reviewer=request.user)[:50])
    return render(
        request, "review/second_pass.html", {"agreement": selectors.agreement(), "about_me": about_me}
    )


@role_required(ANNOTATOR)
@require_http_methods(["GET", "POST"])
def second_pass_image(request, pass_id: int):
    second = selectors.second_pass_of(pass_id, request.user)
    if second is None:
        raise Http404("No such second pass of yours.")
    captions, instructions = selectors.items_to_check(second)
    error = ""
    if request.method == "POST":
        verdicts = []
        for kind, items in (("caption", captions), ("instruction", instructions)):
            for item in items:
                key = f"{kind}-{item.pk}"
                verdict = request.POST.get(f"verdict-{key}", "")
                verdicts.append(
                    second_pass.VerdictInput(
                        kind=kind,
                        item_id=item.pk,
                        agrees=verdict == "agree",
                        second_status=ItemStatus.REJECTED if verdict == "disagree" else "",
                        note=request.POST.get(f"note-{key}", ""),
                    )
                )
        try:
            second_pass.submit_verdicts(second.pk, by=request.user, verdicts=verdicts)
        except second_pass.SecondPassError as exc:
            error = str(exc)
        else:
            messages.success(request, "Second pass recorded.")
            return redirect("review:second_pass")
    return render(
        request,
        "review/second_pass_image.html",
        {"second": second, "captions": captions, "instructions": instructions, "error": error},
        status=400 if error else 200,
    )


@role_required(ADMIN)
@require_GET
def disagreements(request):
    rows = list(selectors.disagreements()[:200])
    return render(request, "review/disagreements.html", {"rows": rows, "agreement": selectors.agreement()})


# --- statistics (admins) ---------------------------------------------------------------------------------


@role_required(ADMIN)
@require_GET
def stats_page(request):
    return render(
        request,
        "review/stats.html",
        {
            "rates": stats.correction_rates(),
            "hallucinations": stats.hallucination_counts(),
            "throughput": stats.throughput(),
            "agreement": selectors.agreement(),
            "quality": quality_stats.statistics(),
        },
    )
