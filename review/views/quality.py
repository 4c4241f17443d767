"""The review side of the quality loop: the queue's "most flags first" claim, and review by exception
switched on or off per domain (admins; the figures are on the statistics page)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from accounts.roles import ADMIN, ANNOTATOR, role_required
from corpus.models import Domain

from ..services import auto_accept, flag_order
from .work import _chosen_domains, retry_on_database_error


@role_required(ANNOTATOR)
@require_POST
@retry_on_database_error
def next_flagged_image(request):
    """Take the pending image of the chosen domains whose drafts carry the most flags."""
    image_id = flag_order.claim_most_flagged(request.user, domain_ids=_chosen_domains(request))
    if image_id is None:
        messages.info(request, "Nothing is waiting for review in your domains.")
        return redirect("review:queue")
    return redirect("review:image", image_id=image_id)


@role_required(ADMIN)
@require_POST
def auto_accept_switch(request, slug: str):
    """Switch review by exception on (refused with the figures while the floors are not met) or off."""
    domain = get_object_or_404(Domain, slug=slug)
    if request.POST.get("on") == "1":
        try:
            auto_accept.switch_on(domain, by=request.user)
        except auto_accept.AutoAcceptRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Auto-accept is on for {domain.name}.")
    else:
        auto_accept.switch_off(domain, by=request.user)
        messages.success(request, f"Auto-accept is off for {domain.name}.")
    return redirect("review:stats")
