"""Corrections of one image's caption and instructions by the lease holder: saves with the loaded
version (accept / fix / reject), hallucination marks, instructions added by hand, regeneration requests,
and the history of an item as diffs. Writes go through corpus.services."""

import difflib
from dataclasses import dataclass, field

from django.db import transaction

from corpus.models import Caption, Image, Instruction, ItemStatus, Origin, Revision
from corpus.rules import check_text, option_label
from corpus.services.items import create_instruction, current_caption, update_item
from generation import services as generation

from ..models import HallucinationCategory, HallucinationMark
from .queue import finish_if_done, renew_lease

ITEM_MODELS: dict[str, type[Caption] | type[Instruction]] = {"caption": Caption, "instruction": Instruction}
MARKABLE_FIELDS = {"caption": ("text",), "instruction": ("question", "options", "answer")}


class RegenerationRefused(Exception):
    """The generation engine cannot queue this regeneration (e.g. instructions of an image without a
    caption, or no default endpoint of the right kind); the message says why."""


class MarkError(ValueError):
    """A hallucination mark that does not fit its item (unknown category or field, span out of range)."""


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


def item_kind(item) -> str:
    return "caption" if isinstance(item, Caption) else "instruction"


def get_item(kind: str, item_id: int) -> Caption | Instruction:
    """The caption or instruction, with its image and domain; raises LookupError for an unknown kind."""
    try:
        model = ITEM_MODELS[kind]
    except KeyError:
        raise LookupError(f"unknown item kind {kind!r}") from None
    return model.objects.select_related("image", "image__domain").get(pk=item_id)


def _field_text(item, name: str) -> str:
    value = getattr(item, name)
    return "\n".join(value) if isinstance(value, list) else str(value or "")


def _build_marks(item, revision: Revision, marks: list[MarkInput], by) -> list[HallucinationMark]:
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
                revision=revision,
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
    its last draft is decided. Not idempotent: a repeat raises StaleVersion (corpus.services), as does
    any save against a version someone else changed. Only the holder saves (queue.renew_lease: a lapsed
    lease nobody took comes back, an image never held is never taken): raises LeaseHeld/NotHeld
    otherwise, and InstructionRuleError/InvalidTransition/MarkError for bad input — nothing is written
    then."""
    with transaction.atomic():
        item = get_item(kind, item_id)
        renew_lease(item.image_id, by)
        saved = update_item(
            item,
            by=by,
            expected_version=expected_version,
            changes=changes,
            status=status,
            reason=reason,
            note=note,
        )
        saved.image = item.image
        created = []
        if marks:
            revision = Revision.objects.get(**{kind: saved, "version": saved.version})
            created = _build_marks(saved, revision, marks, by)
        done = finish_if_done(item.image_id, by)
    return SaveResult(item=saved, image_done=done, marks=created)


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


def image_items(image: Image) -> tuple[list[Caption], list[Instruction]]:
    """What the review page shows: captions and instructions a person should see (not invalid model
    output), oldest first, with the hallucination marks they already carry."""
    captions = list(
        Caption.objects.filter(image=image)
        .exclude(status=ItemStatus.INVALID)
        .prefetch_related("hallucinations")
    )
    instructions = list(
        Instruction.objects.filter(image=image)
        .exclude(status=ItemStatus.INVALID)
        .prefetch_related("hallucinations")
        .order_by("type", "id")
    )
    return captions, instructions


# --- history -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDiff:
    name: str
    segments: list[tuple[str, str]]  # ("equal" | "delete" | "insert", text)


def _as_text(value) -> str:
    if isinstance(value, list):
        return "\n".join(f"{option_label(i)}. {v}" for i, v in enumerate(value))
    return "" if value is None else str(value)


def diff_snapshots(before: dict | None, after: dict) -> list[FieldDiff]:
    """Word-level differences between two snapshots, field by field (only the fields that changed)."""
    before = before or {}
    out = []
    for name in after:
        old, new = _as_text(before.get(name)), _as_text(after.get(name))
        if old == new:
            continue
        a, b = old.split(" "), new.split(" ")
        segments: list[tuple[str, str]] = []
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
            if op == "equal":
                segments.append(("equal", " ".join(a[i1:i2])))
                continue
            if op in ("delete", "replace"):
                segments.append(("delete", " ".join(a[i1:i2])))
            if op in ("insert", "replace"):
                segments.append(("insert", " ".join(b[j1:j2])))
        out.append(FieldDiff(name, [s for s in segments if s[1]]))
    return out


def item_history(item) -> list[dict]:
    """The item's revisions, newest first, each with who, when, action, note, marks and its diff."""
    revisions = (
        Revision.objects.filter(**{item_kind(item): item})
        .select_related("by")
        .prefetch_related("hallucinations")
        .order_by("-version")
    )
    return [{"revision": r, "diffs": diff_snapshots(r.before, r.after)} for r in revisions]
