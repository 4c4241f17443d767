"""Reads of the review app that pages and the API share: the queue's counts and an annotator's leases and
previous image, an image with the items a person reviews, one item, an item's history as diffs, the
second pass's items, agreement and disagreements. Nothing here writes."""

import difflib
from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q

from corpus.models import Caption, Domain, Image, ImageEvent, Instruction, ItemStatus, ReviewStatus, Revision
from corpus.rules import option_label

from .models import SecondPass, SecondVerdict

ITEM_MODELS: dict[str, type[Caption] | type[Instruction]] = {"caption": Caption, "instruction": Instruction}


class NoSuchItem(LookupError):
    """No caption or instruction of that kind and id (404)."""


# --- the queue ---------------------------------------------------------------------------------------


def pending_counts(domain_ids: list[int] | None = None) -> dict[int, int]:
    """Images waiting per domain (one grouped query on the pending partial index)."""
    qs = Image.objects.filter(review_status=ReviewStatus.PENDING)
    if domain_ids:
        qs = qs.filter(domain_id__in=domain_ids)
    return dict(qs.values_list("domain_id").annotate(n=Count("id")).values_list("domain_id", "n"))


def leases_of(user):
    """The images the user holds now."""
    return (
        Image.objects.filter(review_status=ReviewStatus.IN_REVIEW, leased_by=user)
        .select_related("domain")
        .order_by("lease_expires_at")
    )


def previous_image_id(user, *, before: int | None = None) -> int | None:
    """The image this user opened last before `before` (the "previous" shortcut)."""
    qs = ImageEvent.objects.filter(actor=user, to_status=ReviewStatus.IN_REVIEW).order_by("-at", "-id")
    if before is not None:
        anchor = qs.filter(image_id=before).values_list("at", flat=True).first()
        qs = qs.exclude(image_id=before)
        if anchor is not None:
            qs = qs.filter(at__lte=anchor)
    return qs.values_list("image_id", flat=True).first()


def active_domains():
    """The domains an annotator may choose (active ones, by name)."""
    return Domain.objects.filter(is_active=True)


def active_domain_ids(ids) -> list[int]:
    """Those of `ids` that name active domains."""
    return list(Domain.objects.filter(pk__in=ids, is_active=True).values_list("pk", flat=True))


# --- images and items --------------------------------------------------------------------------------


def image_exists(image_id: int) -> bool:
    return Image.objects.filter(pk=image_id).exists()


def image_for_page(image_id: int) -> Image | None:
    """The image with its domain and lease holder (what the review page shows around the items)."""
    return Image.objects.select_related("domain", "leased_by").filter(pk=image_id).first()


def image_with_items(image_id: int) -> Image:
    """The image with its domain and the captions and instructions a person reviews (not invalid model
    output) prefetched: what the API's image read serialises."""
    return (
        Image.objects.select_related("domain")
        .prefetch_related(
            Prefetch("captions", queryset=Caption.objects.exclude(status=ItemStatus.INVALID)),
            Prefetch("instructions", queryset=Instruction.objects.exclude(status=ItemStatus.INVALID)),
        )
        .get(pk=image_id)
    )


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
        .prefetch_related("hallucinations", "flags", "verdicts")  # flags and verdicts: review/_quality.html
        .order_by("type", "id")
    )
    return captions, instructions


def item_kind(item) -> str:
    return "caption" if isinstance(item, Caption) else "instruction"


def get_item(kind: str, item_id: int) -> Caption | Instruction:
    """The caption or instruction, with its image and domain; raises NoSuchItem (404) for an unknown kind
    or id."""
    model = ITEM_MODELS.get(kind)
    item = (
        model.objects.select_related("image", "image__domain").filter(pk=item_id).first() if model else None
    )
    if item is None:
        raise NoSuchItem(f"There is no {kind if model else 'item'} {item_id}.")
    return item


def item_with_marks(item) -> Caption | Instruction:
    """The item again, with the hallucination marks it carries (what the item partial shows)."""
    return type(item).objects.prefetch_related("hallucinations").get(pk=item.pk)


def revisions_of(kind: str, item):
    """The item's revisions, newest first, with who made each (the API's history, paginated there)."""
    return Revision.objects.filter(**{kind: item}).select_related("by").order_by("-version")


# --- history -----------------------------------------------------------------------------------------


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


# --- second pass -------------------------------------------------------------------------------------


def items_to_check(second: SecondPass) -> tuple[list[Caption], list[Instruction]]:
    """The accepted caption(s) and instructions of the image, as the first reviewer left them."""
    captions = list(Caption.objects.filter(image_id=second.image_id, status=ItemStatus.ACCEPTED))
    instructions = list(Instruction.objects.filter(image_id=second.image_id, status=ItemStatus.ACCEPTED))
    return captions, instructions


def agreement() -> dict:
    """Agreement rate over every verdict: {'verdicts', 'agreed', 'rate'} (rate None with no verdicts)."""
    counts = SecondVerdict.objects.aggregate(verdicts=Count("id"), agreed=Count("id", filter=Q(agrees=True)))
    counts["rate"] = counts["agreed"] / counts["verdicts"] if counts["verdicts"] else None
    return counts


def disagreements():
    """Verdicts that disagree with the first reviewer, newest first, with what the page shows."""
    return (
        SecondVerdict.objects.filter(agrees=False)
        .select_related("caption", "instruction", "by", "second_pass__first_reviewer", "second_pass__image")
        .order_by("-at", "-id")
    )


def second_pass_of(pass_id: int, reviewer) -> SecondPass | None:
    """The second pass `reviewer` holds, with its image and first reviewer (None when not theirs)."""
    return (
        SecondPass.objects.select_related("image", "image__domain", "first_reviewer")
        .filter(pk=pass_id, reviewer=reviewer)
        .first()
    )
