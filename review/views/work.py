"""Pages where annotators work: the queue, the review page and its htmx partials (save, validate, add,
regenerate). Views parse input, call one service, render; the services hold the logic.

A GET never changes anything: the review page and its panel show an image read-only unless the caller
holds it. Claiming ("Take the next image"), taking ("Review this image") and reopening are POSTs."""

import functools
import json
import logging
import re

from django.conf import settings
from django.contrib import messages
from django.db import OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import ANNOTATOR, role_required
from accounts.throttles import throttle
from corpus.models import Image, Instruction, ItemStatus, ReviewStatus
from corpus.rules import (
    ANSWER_RULE,
    MCQ_MAX_OPTIONS,
    InstructionRuleError,
    InstructionType,
    check_instruction,
)
from corpus.serializers import INT_MAX
from corpus.services.conversations import split_turns
from corpus.services.items import InvalidTransition, StaleVersion, check_changes, clean_instruction_fields
from web.api_errors import mapped_status

from .. import selectors
from ..models import HallucinationCategory
from ..services import corrections, queue
from ..services.corrections import MarkError, MarkInput, RegenerationRefused
from ..services.queue import LeaseError, LeaseHeld
from ..session import SESSION_DOMAINS, chosen_domain_ids

log = logging.getLogger(__name__)
# Ids are bigint: more digits than this can only be wrong (and would overflow a query parameter).
_ID = re.compile(r"[0-9]{1,18}")


def parse_id(value) -> int | None:
    """A positive id from a form field (ASCII digits only, within 64 bits), or None."""
    value = str(value or "").strip()
    return int(value) if _ID.fullmatch(value) and int(value) > 0 else None


def _chosen_domains(request) -> list[int]:
    return chosen_domain_ids(request)


def retry_on_database_error(view):
    """A review action the database could not carry out (busy, locked, connection lost) answers 503
    with a message saying nothing was saved and offering a retry — for htmx as plain text the page's
    script shows with a Retry button, for a plain form a page with a "Try again" button that sends the
    same form again. Nothing is half-written: every service runs in one transaction."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except OperationalError:
            log.exception("database error in %s", request.path)
            message = "The database did not answer (busy or unavailable); nothing was saved."
            if request.headers.get("HX-Request"):
                response = HttpResponse(f"{message} Your edits are kept here.", status=503)
                response["Content-Type"] = "text/plain; charset=utf-8"
            else:
                fields = [(k, v) for k, values in request.POST.lists() for v in values]
                fields = [(k, v) for k, v in fields if k != "csrfmiddlewaretoken"]
                response = render(
                    request, "review/retry.html", {"message": message, "fields": fields}, status=503
                )
            response["Retry-After"] = "1"
            return response

    return wrapped


# --- queue ------------------------------------------------------------------------------------------


@role_required(ANNOTATOR)
@require_http_methods(["GET", "POST"])
def queue_page(request):
    """Choose domains, see what waits, take the next image."""
    if request.method == "POST":
        ids = [parse_id(d) for d in request.POST.getlist("domains")]
        if None in ids:
            return _render_queue(request, status=400, error="domains: choose domains from the list.")
        request.session[SESSION_DOMAINS] = list(selectors.active_domain_ids(ids))
        chosen = len(request.session[SESSION_DOMAINS])
        messages.success(
            request,
            f"Saved: you review images of {chosen} domain{'s' if chosen != 1 else ''}."
            if chosen
            else "Saved: you review images of every domain.",
        )
        return redirect("review:queue")
    return _render_queue(request)


def _render_queue(request, *, status: int = 200, error: str = "") -> HttpResponse:
    counts = selectors.pending_counts()
    chosen = set(_chosen_domains(request))
    domains = [
        {"domain": d, "pending": counts.get(d.pk, 0), "chosen": d.pk in chosen}
        for d in selectors.active_domains()
    ]
    return render(
        request,
        "review/queue.html",
        {
            "domains": domains,
            "leases": selectors.leases_of(request.user),
            "agreement": selectors.agreement(),
            "error": error,
        },
        status=status,
    )


@role_required(ANNOTATOR)
@require_POST
@retry_on_database_error
def next_image(request):
    """Release the current image (if any) and go to the next: one the user still holds, else a new claim."""
    current = request.POST.get("current", "").strip()
    leaving = parse_id(current) if current else None
    if current and (leaving is None or not selectors.image_exists(leaving)):
        return _render_queue(
            request,
            status=400,
            error=f"current: there is no image {current[:20]!r} to leave; nothing changed.",
        )
    image_id = queue.next_image_for(request.user, domain_ids=_chosen_domains(request), leaving=leaving)
    if image_id is None:
        messages.info(request, "Nothing is waiting for review in your domains.")
        return redirect("review:queue")
    return redirect("review:image", image_id=image_id)


@role_required(ANNOTATOR)
@require_GET
def previous_image(request, image_id: int):
    previous = selectors.previous_image_id(request.user, before=image_id)
    if previous is None:
        messages.info(request, "There is no earlier image in your history.")
        return redirect("review:image", image_id=image_id)
    return redirect("review:image", image_id=previous)


# --- the review page ---------------------------------------------------------------------------------


def _panel_context(request, image: Image, *, readonly: bool, notice: str = "") -> dict:
    captions, instructions = selectors.image_items(image)
    groups = []
    for type_value, label in InstructionType.choices:
        # A dialogue's turns are shown with their dialogue (review/_conversations.html), not by type.
        items = [i for i in instructions if i.type == type_value and i.conversation_id is None]
        groups.append({"type": type_value, "label": label, "rule": ANSWER_RULE[type_value], "items": items})
    undecided = sum(1 for i in [*captions, *instructions] if i.status == ItemStatus.DRAFT)
    return {
        "image": image,
        "captions": captions,
        "groups": groups,
        "conversations": split_turns(instructions)[1],
        "undecided": undecided,
        "readonly": readonly,
        "notice": notice,
        "categories": HallucinationCategory.choices,
        "types": InstructionType.choices,
        "option_slots": range(MCQ_MAX_OPTIONS),
        "heartbeat_seconds": settings.REVIEW_HEARTBEAT_SECONDS,
        "domains_json": json.dumps(_chosen_domains(request)),
    }


def _show_image(request, image_id: int) -> dict:
    """The panel's context, read-only unless the user holds the image. Reads only: opening a page never
    claims (the page offers "Review this image" or "Reopen", which are POSTs)."""
    image = selectors.image_for_page(image_id)
    if image is None:
        raise Http404("No such image.")
    if image.review_status == ReviewStatus.IN_REVIEW and image.leased_by_id == request.user.pk:
        return _panel_context(request, image, readonly=False)
    take = reopen = False
    expires = image.lease_expires_at
    if image.review_status == ReviewStatus.IN_REVIEW and expires is not None and expires > timezone.now():
        notice = str(LeaseHeld(image, image.leased_by.get_username() if image.leased_by else "someone"))
    elif image.review_status in (ReviewStatus.PENDING, ReviewStatus.IN_REVIEW):
        notice, take = "This image waits for review.", True
    elif image.review_status == ReviewStatus.REVIEWED:
        notice, reopen = "This image is reviewed.", True
    else:
        notice = "This image has no drafts to review yet."
    context = _panel_context(request, image, readonly=True, notice=notice)
    context.update(can_take=take, can_reopen=reopen)
    return context


@role_required(ANNOTATOR)
@require_GET
def review_image(request, image_id: int):
    """The review page of one image: editable when the user holds it, read-only otherwise."""
    return render(request, "review/review.html", _show_image(request, image_id))


@role_required(ANNOTATOR)
@require_GET
def image_panel(request, image_id: int):
    """The panel alone (what the page prefetches for the next image, which its POST claimed)."""
    return render(request, "review/_image_panel.html", _show_image(request, image_id))


def _take(request, image_id: int, *, reopen: bool) -> HttpResponse:
    if not selectors.image_exists(image_id):
        raise Http404("No such image.")
    try:
        queue.take_image(image_id, request.user, reopen=reopen)
    except LeaseError as exc:
        context = _show_image(request, image_id)
        context["notice"] = str(exc)
        return render(request, "review/review.html", context, status=mapped_status(exc))
    return redirect("review:image", image_id=image_id)


@role_required(ANNOTATOR)
@require_POST
@retry_on_database_error
def take_image(request, image_id: int):
    """Take this image for review ("Review this image"): 302 to its page, 409 when someone holds it."""
    return _take(request, image_id, reopen=False)


@role_required(ANNOTATOR)
@require_POST
@retry_on_database_error
def reopen_image(request, image_id: int):
    """Reopen a reviewed image to change it (writes a "reopened" event): 302 to its page, or 409."""
    return _take(request, image_id, reopen=True)


def item_or_404(kind: str, item_id: int):
    try:
        return selectors.get_item(kind, item_id)
    except selectors.NoSuchItem:
        raise Http404("No such item.") from None


def _render_item(request, item, *, status: int = 200, **extra) -> HttpResponse:
    kind = selectors.item_kind(item)
    item = selectors.item_with_marks(item)
    context = {
        "item": item,
        "kind": kind,
        "categories": HallucinationCategory.choices,
        "types": InstructionType.choices,
        "option_slots": range(MCQ_MAX_OPTIONS),
        "readonly": False,
        **extra,
    }
    if extra.get("yours") and not extra.get("conflict"):
        # A refused save (broken rule, missing reason, lost lease) shows what the annotator typed, not
        # the stored item, so nothing they wrote disappears from the page.
        context["values"] = extra["yours"]
    return render(request, "review/_item.html", context, status=status)


@role_required(ANNOTATOR)
@require_GET
def item_partial(request, kind: str, item_id: int):
    """The item as it is now (the "keep theirs" choice of a conflict)."""
    return _render_item(request, item_or_404(kind, item_id))


def _submitted_changes(kind: str, post) -> dict:
    if kind == "caption":
        return {"text": post.get("text", "")}
    type_ = post.get("type", "")
    options = [o.strip() for o in post.getlist("options")]
    while options and not options[-1]:
        options.pop()
    if type_ != InstructionType.MULTIPLE_CHOICE:
        # The option inputs are hidden for other types; what they still hold is not part of the item.
        options = []
    return {
        "type": type_,
        "question": post.get("question", ""),
        "options": options,
        "answer": post.get("answer", ""),
    }


def _submitted_marks(post) -> list[MarkInput]:
    def as_int(value):
        # A span outside the text (negative, huge) is refused by the service as a MarkError; only an
        # empty field means "no span". Beyond 18 digits the number only needs to stay out of range.
        text = str(value or "").strip()
        if not text:
            return None
        if not re.fullmatch(r"-?[0-9]+", text):
            return -1
        return int(text) if len(text) <= 18 else 10**18

    categories = post.getlist("mark_category")
    fields = post.getlist("mark_field")
    starts = post.getlist("mark_start")
    ends = post.getlist("mark_end")
    marks = []
    for n, category in enumerate(categories):
        marks.append(
            MarkInput(
                category=category,
                field=fields[n] if n < len(fields) else "",
                span_start=as_int(starts[n] if n < len(starts) else None),
                span_end=as_int(ends[n] if n < len(ends) else None),
            )
        )
    return marks


# "undo" takes the item back to draft: the page offers it for the last decision while the lease holds.
ACTIONS = {
    "save": None,
    "accept": ItemStatus.ACCEPTED,
    "reject": ItemStatus.REJECTED,
    "undo": ItemStatus.DRAFT,
}


@role_required(ANNOTATOR)
@require_POST
@retry_on_database_error
def save_item(request, kind: str, item_id: int):
    """Save an edit and/or decision (htmx): 200 with the item, 409 with both versions on a stale save or
    a lost lease, 400 with the broken rules."""
    item = item_or_404(kind, item_id)
    action = request.POST.get("action", "save")
    version = parse_id(request.POST.get("expected_version"))
    if version is not None and version > INT_MAX:  # versions are 32-bit, like the API's
        version = None
    changes = _submitted_changes(kind, request.POST)
    reason = request.POST.get("reason", "").strip()
    if action not in ACTIONS or version is None:
        return _render_item(request, item, status=400, error="The form was incomplete; reload the page.")
    if action == "reject" and not reason:
        return _render_item(
            request, item, status=400, error="Give a reason for rejecting.", yours=changes, action=action
        )
    try:
        result = corrections.save_item(
            kind,
            item.pk,
            by=request.user,
            expected_version=version,
            changes=changes,
            status=ACTIONS[action],
            reason=reason,
            marks=_submitted_marks(request.POST),
        )
    except (StaleVersion, LeaseError, InstructionRuleError, InvalidTransition, MarkError) as exc:
        return _refused_save(
            request, item, exc, changes=changes, version=version, action=action, reason=reason
        )
    response = _render_item(request, result.item, saved=True)
    if result.image_done:
        response["HX-Trigger-After-Settle"] = json.dumps({"imageDone": {"image": item.image_id}})
    return response


def _refused_save(
    request, item, exc, *, changes: dict, version: int, action: str, reason: str
) -> HttpResponse:
    """The item partial for a save a service refused, with the status API_ERROR_STATUS gives the error (a
    stale version or a lease that is not the caller's 409, bad input 400) and what the annotator typed: a
    stale save shows both versions, the others the error above the annotator's values."""
    status = mapped_status(exc)
    if isinstance(exc, StaleVersion):
        return _render_item(
            request,
            exc.current,
            status=status,
            conflict=True,
            yours=changes,
            yours_version=version,
            action=action,
            reason=reason,
        )
    if isinstance(exc, LeaseError):
        return _render_item(request, item, status=status, error=str(exc), lease_lost=True, yours=changes)
    if isinstance(exc, InstructionRuleError):
        error = "; ".join(v.message for v in exc.violations)
        return _render_item(request, item, status=status, error=error, yours=changes, action=action)
    return _render_item(request, item, status=status, error=str(exc), yours=changes)


@role_required(ANNOTATOR)
@require_POST
@retry_on_database_error
def add_instruction(request, image_id: int):
    """Add a missing instruction by hand (htmx): the new item, or 400 with the broken rules."""
    if not selectors.image_exists(image_id):
        raise Http404("No such image.")
    changes = _submitted_changes("instruction", request.POST)
    try:
        created = corrections.add_instruction(image_id, by=request.user, **changes)
    except (InstructionRuleError, LeaseError) as exc:
        # The status API_ERROR_STATUS gives it: a broken rule 400, a lease that is not the caller's 409.
        error = (
            "; ".join(v.message for v in exc.violations)
            if isinstance(exc, InstructionRuleError)
            else str(exc)
        )
        return render(request, "review/_add_result.html", {"error": error}, status=mapped_status(exc))
    return _render_item(request, created, saved=True, added=True)


@role_required(ANNOTATOR)
@require_POST
@throttle("regeneration")
def regenerate_item(request, kind: str, item_id: int):
    """Ask the generation engine for a new draft of this item: 202 when queued, 409 with the reason shown
    in the item when refused — not the lease holder, the hourly quota used up (with Retry-After), or the
    engine's reason. (The page shows 409 bodies, as it does for a lost lease; the API answers 403/429.)"""
    from ..services.corrections import RegenerationQuotaExceeded

    item = item_or_404(kind, item_id)
    try:
        corrections.request_regeneration(kind, item.pk, by=request.user)
    except RegenerationQuotaExceeded as exc:
        response = render(request, "review/_flash.html", {"error": str(exc)}, status=409)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except RegenerationRefused as exc:
        return render(request, "review/_flash.html", {"error": str(exc)}, status=409)
    return render(
        request,
        "review/_flash.html",
        {"message": "Regeneration queued; the new draft will join the queue."},
        status=202,
    )


@role_required(ANNOTATOR)
@require_POST
def validate(request):
    """Check an instruction being typed against the type rules of corpus.rules (the one place they live)."""
    changes = _submitted_changes("instruction", request.POST)
    # The text as typed first (control characters: what a save refuses), then the type rules on what a
    # save would store.
    violations = check_changes(Instruction, changes)
    fields = clean_instruction_fields(
        changes["type"], changes["question"], changes["options"], changes["answer"]
    )
    refused = {v.field for v in violations}
    violations += [
        v
        for v in check_instruction(fields["type"], fields["question"], fields["options"], fields["answer"])
        if v.field not in refused
    ]
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"valid": not violations, "violations": [v.message for v in violations]})
    return render(
        request,
        "review/_rules.html",
        {"violations": violations, "rule": ANSWER_RULE.get(fields["type"], "")},
    )
