"""Corrections of one image's caption and instructions by the lease holder: saves with the loaded
version (accept / fix / reject), hallucination marks, instructions added by hand, regeneration requests.
Writes go through corpus.services; the reads (an item, its history as diffs) are in review.selectors."""

import contextlib
import functools
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from corpus.models import Caption, Image, Instruction, ItemStatus, Origin
from corpus.rules import check_text
from corpus.services.items import create_instruction, current_caption, decide_item, decide_plain, update_item
from corpus.services.review_state import NotHeld
from generation import services as generation

from ..models import HallucinationCategory, HallucinationMark
from ..selectors import ITEM_MODELS, get_item, item_kind
from . import second_pass
from .queue import renew_lease

MARKABLE_FIELDS = {"caption": ("text",), "instruction": ("question", "options", "answer")}


class RegenerationRefused(Exception):
    """The generation engine cannot queue this regeneration (e.g. instructions of an image without a
    caption, or no default endpoint of the right kind); the message says why."""


class MarkError(ValueError):
    """A hallucination mark that does not fit its item (unknown category or field, span out of range)."""

    field = "hallucinations"


@dataclass(frozen=True)
class MarkInput:
    category: str
    field: str = ""
    span_start: int | None = None
    span_end: int | None = None
    note: str = ""


@dataclass
class SaveResult:
    item: Caption | Instruction
    image_done: bool
    marks: list[HallucinationMark] = field(default_factory=list)


def _field_text(item, name: str) -> str:
    value = getattr(item, name)
    return "\n".join(value) if isinstance(value, list) else str(value or "")


def _build_marks(item, revision_id: int, marks: list[MarkInput], by) -> list[HallucinationMark]:
    kind = item_kind(item)
    rows = []
    for mark in marks:
        if mark.category not in HallucinationCategory.values:
            raise MarkError(f"hallucination: unknown category {str(mark.category)[:50]!r}")
        if (violation := check_text("hallucination note", mark.note)) is not None:
            raise MarkError(violation.message)
        name = mark.field or MARKABLE_FIELDS[kind][-1]
        if name not in MARKABLE_FIELDS[kind]:
            raise MarkError(f"hallucination: a {kind} has no field {str(name)[:50]!r} to mark")
        text = _field_text(item, name)
        start, end = mark.span_start, mark.span_end
        span_text = ""
        if start is not None or end is not None:
            if start is None or end is None or not 0 <= start < end <= len(text):
                raise MarkError(
                    f"hallucination: the span {start}–{end} is outside the {name} ({len(text)} characters)"
                )
            span_text = text[start:end]
        rows.append(
            HallucinationMark(
                category=mark.category,
                field=name,
                span_start=start,
                span_end=end,
                span_text=span_text,
                note=mark.note[:1000],
                domain_id=item.image.domain_id,
                item_type="caption" if kind == "caption" else item.type,
                model_name=item.model_name,
                revision_id=revision_id,
                by=by,
                **{kind: item},
            )
        )
    return HallucinationMark.objects.bulk_create(rows)


def save_item(
    kind: str,
    item_id: int,
    *,
    by,
    expected_version: int,
    changes: dict | None = None,
    status: str | None = None,
    reason: str = "",
    note: str = "",
    marks: list[MarkInput] | None = None,
) -> SaveResult:
    """Save the lease holder's edit and/or decision of one item, carrying the version they loaded, with
    the hallucination marks of that correction tied to its revision; the image becomes reviewed when
    its last draft is decided (and may be sampled for the second pass). Not idempotent: a repeat raises
    StaleVersion (corpus.services.items), as does any save against a version someone else changed. Only
    the holder saves (a lapsed lease nobody took comes back, an image never held is never taken): raises
    LeaseHeld/NotHeld otherwise, NoSuchItem for an unknown item, and InstructionRuleError/
    InvalidTransition/MarkError for bad input — nothing is written then.

    On PostgreSQL a plain decision (a status, no edit, no marks) is one statement when its checks are
    known to pass without reading the item (corpus.services.items.decide_plain; the second-pass sample
    follows it when the image finished and falls in the share). Otherwise at most four: read the item; the save itself (corpus.services.items.
    decide_item: lease, compare-and-swap, revision, image finished — one statement); the marks, when there
    are any; the second-pass sample, when the image finished and falls in the share. The writes share one
    transaction; a save with no marks of an image outside the second-pass share has one write statement,
    atomic by itself, so it runs without BEGIN and COMMIT round trips (the read before it needs no
    transaction: the write compare-and-swaps on what was read)."""
    if status and not changes and not marks and kind in ITEM_MODELS:
        # A plain decision: one statement, when it applies (else nothing was written and the full path
        # below reads the item, then saves or says why not).
        saved = decide_plain(
            ITEM_MODELS[kind],
            item_id,
            actor=by,
            expected_version=expected_version,
            status=status,
            reason=reason,
            note=note,
            holding_lease=True,
        )
        if saved is not None:
            if saved.image_done:
                # After the save committed: a crash in between leaves this image out of the sample.
                second_pass.sample_for_second_pass(saved.item.image_id, first_reviewer=by)
            return SaveResult(item=saved.item, image_done=saved.image_done)
    item = get_item(kind, item_id)
    one_write = (
        connection.vendor == "postgresql"
        and not marks
        and not second_pass.is_sampled(item.image_id, settings.REVIEW_SECOND_PASS_SHARE)
    )
    with contextlib.nullcontext() if one_write else transaction.atomic():
        decide = functools.partial(
            decide_item,
            actor=by,
            expected_version=expected_version,
            changes=changes,
            status=status,
            reason=reason,
            note=note,
            holding_lease=True,
        )
        try:
            saved = decide(item)
        except NotHeld:
            # Nothing was written. A holder whose lease lapsed and nobody took the image gets it back
            # (renew_lease raises LeaseHeld/NotHeld otherwise); then the save runs again.
            renew_lease(item.image_id, by)
            saved = decide(item)
        created = _build_marks(saved.item, saved.revision_id, marks, by) if marks else []
        if saved.image_done:
            second_pass.sample_for_second_pass(item.image_id, first_reviewer=by)
    return SaveResult(item=saved.item, image_done=saved.image_done, marks=created)


def add_instruction(
    image_id: int, *, by, type: str, question: str, answer: str, options: list[str] | None = None
) -> Instruction:
    """Add an instruction the models missed, written by the lease holder; it is accepted at once (a
    person wrote it) and keeps both revisions. Not idempotent. Raises InstructionRuleError, and
    LeaseHeld/NotHeld when the user does not hold the image."""
    with transaction.atomic():
        renew_lease(image_id, by)
        image = Image.objects.get(pk=image_id)
        created = create_instruction(
            image,
            type=type,
            question=question,
            answer=answer,
            options=options,
            origin=Origin.PERSON,
            by=by,
            caption=current_caption(image),
        )
        return update_item(
            created, by=by, expected_version=created.version, status=ItemStatus.ACCEPTED, note="added by hand"
        )


class RegenerationForbidden(RegenerationRefused):
    """Only the person who holds the image's lease (or an admin) may ask for a regeneration of it."""


class RegenerationQuotaExceeded(RegenerationRefused):
    """The person used up REGENERATION_HOURLY_QUOTA; `retry_after` seconds until the next one is allowed."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def request_regeneration(kind: str, item_id: int, *, by):
    """Ask the generation engine for a new draft of this item's stage (a caption, or instructions of the
    same type). Not idempotent: each call queues one more round — a paid model call — so only the lease
    holder of the image (or an admin) may ask, within the hourly quota. Returns the one-image
    GenerationJob (launched_by = who asked: the record of the request and its cost); raises
    RegenerationForbidden, RegenerationQuotaExceeded, or RegenerationRefused with the engine's reason."""
    from accounts.roles import ADMIN, has_role
    from corpus.models import ReviewStatus

    item = get_item(kind, item_id)
    image = Image.objects.select_related("domain").get(pk=item.image_id)  # the lease as it is now
    holds = image.review_status == ReviewStatus.IN_REVIEW and image.leased_by_id == by.pk
    if not holds and not has_role(by, ADMIN):
        raise RegenerationForbidden("only the annotator who holds this image may ask for a regeneration")
    try:
        if kind == "caption":
            return generation.queue_regeneration(image, stage="captions", by=by)
        return generation.queue_regeneration(image, stage="instructions", by=by, instruction_type=item.type)
    except generation.RegenerationQuotaExceeded as exc:
        raise RegenerationQuotaExceeded(str(exc), exc.retry_after) from exc
    except generation.LaunchError as exc:
        raise RegenerationRefused(str(exc)) from exc
