"""The review side of the quality loop: the queue's "most flags first" claim."""

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts.roles import ANNOTATOR, role_required

from ..services import flag_order
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
