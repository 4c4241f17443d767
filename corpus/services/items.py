"""Writes to captions and instructions: creation, edits with optimistic concurrency, status moves.

Every change goes through `update_item` (or the create functions) so that each one is checked against
the type rules, compare-and-swaps on the version the editor loaded, and leaves a Revision.
"""

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..models import Caption, Image, Instruction, ItemStatus, Origin, Revision, RevisionAction
from ..rules import (
    RULES_VERSION,
    InstructionRuleError,
    InstructionType,
    RuleViolation,
    check_instruction,
    check_text,
    normalize_answer,
    strip_option_label,
)
from ..transitions import InvalidTransition, check_move  # noqa: F401  (an item's refused move, raised here)
from .review_state import mark_pending


class StaleVersion(Exception):
    """The item changed since the editor loaded it. `current` is the item as it is now."""

    def __init__(self, current):
        self.current = current
        super().__init__(f"{type(current).__name__} {current.pk} is at version {current.version}")


_ACTION_FOR_STATUS = {
    ItemStatus.ACCEPTED: RevisionAction.ACCEPTED,
    ItemStatus.REJECTED: RevisionAction.REJECTED,
    ItemStatus.DRAFT: RevisionAction.REOPENED,
    ItemStatus.INVALID: RevisionAction.INVALIDATED,
}


def clean_instruction_fields(type_: str, question: str, options, answer: str) -> dict:
    """Normalise what is unambiguous (labels on options, 'yes.' → 'Yes', '(b)' → 'B') before the rules."""
    options = [strip_option_label(str(o)) for o in (options or [])] if isinstance(options, list) else options
    return {
        "type": type_,
        "question": (question or "").strip(),
        "options": options if type_ == InstructionType.MULTIPLE_CHOICE else (options or []),
        "answer": normalize_answer(type_, answer or ""),
    }


def check_changes(
    model: type[Caption] | type[Instruction], changes: dict, **texts: str
) -> list[RuleViolation]:
    """What makes an edit unusable before it touches the item: a key that is no editable field of the
    item (named, never dropped), a value of the wrong kind (`options` is a list of texts, every other
    field a text), a control character in a value or in one of `texts` (reason, note). Empty: usable."""
    violations = []
    kind = model.__name__.lower()
    for key, value in changes.items():
        if key not in model.EDITABLE_FIELDS:
            violations.append(
                RuleViolation(
                    str(key)[:50],
                    "unknown_field",
                    f"{str(key)[:50]}: {'an' if kind[0] in 'aeiou' else 'a'} {kind} has no such field "
                    f"(it takes {', '.join(model.EDITABLE_FIELDS)})",
                )
            )
            continue
        if key == "options":
            if value is not None and not (isinstance(value, list) and all(isinstance(o, str) for o in value)):
                violations.append(RuleViolation(key, "not_a_list", "options: must be a list of texts"))
                continue
        elif not isinstance(value, str):
            violations.append(RuleViolation(key, "not_text", f"{key}: must be a text"))
            continue
        if (violation := check_text(key, value or [])) is not None:
            violations.append(violation)
    for key, value in texts.items():
        if (violation := check_text(key, value)) is not None:
            violations.append(violation)
    return violations


def create_caption(
    image: Image,
    *,
    text: str,
    origin: str = Origin.MODEL,
    by=None,
    status: str = ItemStatus.DRAFT,
    **provenance,
) -> Caption:
    """Store a new caption (a model draft, a person's, or sample data) with its first revision."""
    now = timezone.now()
    with transaction.atomic():
        caption = Caption.objects.create(
            image=image,
            text=text,
            origin=origin,
            status=status,
            created_by=by,
            created_at=now,
            updated_at=now,
            **provenance,
        )
        Revision.objects.create(
            caption=caption, version=1, action=RevisionAction.CREATED, by=by, at=now, after=caption.snapshot()
        )
        if status == ItemStatus.DRAFT:
            mark_pending([image.pk])
    return caption


def create_instruction(
    image: Image,
    *,
    type: str,
    question: str,
    answer: str,
    options: list[str] | None = None,
    origin: str = Origin.MODEL,
    by=None,
    caption: Caption | None = None,
    status: str = ItemStatus.DRAFT,
    **provenance,
) -> Instruction:
    """Store a new instruction with its first revision.

    Model output that breaks the type rules is kept as `invalid` with the broken rules as its reason,
    never dropped; a person's instruction that breaks them, or that check_changes finds unusable as
    typed, is refused with InstructionRuleError."""
    if origin == Origin.PERSON:
        unusable = check_changes(
            Instruction, {"type": type, "question": question, "options": options, "answer": answer}
        )
        if unusable:
            raise InstructionRuleError(unusable)
    fields = clean_instruction_fields(type, question, options, answer)
    violations = check_instruction(fields["type"], fields["question"], fields["options"], fields["answer"])
    reason = ""
    if violations:
        if origin == Origin.PERSON:
            raise InstructionRuleError(violations)
        status = ItemStatus.INVALID
        reason = "; ".join(v.message for v in violations)
        if not isinstance(fields["options"], list):
            fields["options"] = []
        fields = _storable(fields)
    now = timezone.now()
    with transaction.atomic():
        instruction = Instruction.objects.create(
            image=image,
            caption=caption,
            origin=origin,
            status=status,
            reason=reason,
            created_by=by,
            created_at=now,
            updated_at=now,
            **fields,
            **provenance,
        )
        if not violations:
            record_rules_check([instruction.pk])
        Revision.objects.create(
            instruction=instruction,
            version=1,
            action=RevisionAction.INVALIDATED if status == ItemStatus.INVALID else RevisionAction.CREATED,
            by=by,
            at=now,
            after=instruction.snapshot(),
        )
        if status == ItemStatus.DRAFT:
            mark_pending([image.pk])
    return instruction


def _storable(fields: dict) -> dict:
    """Invalid model output kept for the record: NUL, which PostgreSQL cannot store in text, becomes
    U+FFFD (the reason already names the control character that made the row invalid)."""

    def clean(value):
        if isinstance(value, str):
            return value.replace("\x00", "\ufffd")
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return {key: clean(value) for key, value in fields.items()}


def update_item(
    item: Caption | Instruction,
    *,
    by,
    expected_version: int,
    changes: dict | None = None,
    status: str | None = None,
    reason: str = "",
    note: str = "",
) -> Caption | Instruction:
    """Edit and/or move the status of a caption or instruction, if it is still at `expected_version`.

    Not idempotent by itself: a repeated call with the same expected_version raises StaleVersion, which
    is how a double submit is told apart from a second edit. Raises InstructionRuleError when the result
    breaks the type rules (a rejection may keep broken content) and, whatever the status, when the
    changes are unusable (check_changes: unknown fields, wrong kinds, control characters) — nothing is
    written then; InvalidTransition for a move the table does not allow. Returns the item as saved,
    with its new version."""
    model = type(item)
    changes = dict(changes or {})
    unusable = check_changes(model, changes, reason=reason, note=note)
    if unusable:
        raise InstructionRuleError(unusable)
    with transaction.atomic():
        current = model.objects.select_for_update().get(pk=item.pk)
        if current.version != expected_version:
            raise StaleVersion(current)
        before = current.snapshot()
        for field, value in changes.items():
            setattr(current, field, value)
        new_status = status or current.status
        if new_status != current.status:
            check_move(model, "status", current.status, new_status)
        # What is kept for review or training must obey the rules; a rejected item may stay broken.
        violations = None
        if model is Instruction:
            if new_status in (ItemStatus.DRAFT, ItemStatus.ACCEPTED):
                cleaned = clean_instruction_fields(
                    current.type, current.question, current.options, current.answer
                )
                for field, value in cleaned.items():
                    setattr(current, field, value)
            violations = check_instruction(current.type, current.question, current.options, current.answer)
            if violations and new_status in (ItemStatus.DRAFT, ItemStatus.ACCEPTED):
                raise InstructionRuleError(violations)
        elif new_status in (ItemStatus.DRAFT, ItemStatus.ACCEPTED):
            if not (current.text or "").strip():
                raise InstructionRuleError(
                    [RuleViolation("text", "required", "text: a caption must not be empty")]
                )
            if (violation := check_text("text", current.text)) is not None:
                raise InstructionRuleError([violation])
        if new_status == ItemStatus.REJECTED:
            current.reason = reason or current.reason or "rejected"
        elif status is not None:
            current.reason = ""
        now = timezone.now()
        updates = {field: getattr(current, field) for field in model.EDITABLE_FIELDS}
        updates.update(status=new_status, reason=current.reason, updated_at=now)
        if status is not None and new_status != before["status"]:
            updates.update(reviewed_by=by, reviewed_at=now)
        # Compare-and-swap on the version as well as the row lock: SQLite has no SELECT … FOR UPDATE.
        swapped = model.objects.filter(pk=item.pk, version=expected_version).update(
            version=F("version") + 1, **updates
        )
        if swapped != 1:
            raise StaleVersion(model.objects.get(pk=item.pk))
        if violations == [] and not _check_remembered(current, before):
            record_rules_check([current.pk])
        current.refresh_from_db()
        after = current.snapshot()
        if new_status != before["status"]:
            action = _ACTION_FOR_STATUS[new_status]
        else:
            action = RevisionAction.EDITED
        Revision.objects.create(
            version=current.version,
            action=action,
            by=by,
            at=now,
            before=before,
            after=after,
            note=note,
            **({"caption": current} if model is Caption else {"instruction": current}),
        )
    return current


def _check_remembered(instruction: Instruction, before: dict) -> bool:
    """Whether the row already carries the current rules' check of this content (a status move that
    changed none of the four checked fields): then no second UPDATE is needed."""
    unchanged = all(
        before[field] == getattr(instruction, field) for field in ("type", "question", "answer")
    ) and (before["options"] == list(instruction.options or []))
    return (
        unchanged
        and instruction.checked_rules == RULES_VERSION
        and instruction.checked_digest == instruction.content_digest
    )


def record_rules_check(instruction_ids: list[int]) -> int:
    """Remember that these instructions' current content passed corpus.rules (call only after checking
    it): their content digest, which the database keeps, becomes the checked digest at RULES_VERSION.
    The exports then skip checking them again until their content or the rules change. Returns how
    many rows were marked."""
    return Instruction.objects.filter(pk__in=instruction_ids).update(
        checked_digest=F("content_digest"), checked_rules=RULES_VERSION
    )


def recheck_rules(*, batch_size: int = 5000, on_batch=None) -> dict[str, int]:
    """Check every instruction not yet known valid under the current rules (rows written before the
    rules changed, or not through this module) and remember the valid ones. Invalid rows are left as
    they are (the exports skip them). Returns counts: checked, valid, invalid.

    Safe beside other writers: a row is marked with the digest of the content that was checked, so a
    row changed meanwhile does not match its mark and stays unchecked."""
    counts = {"checked": 0, "valid": 0, "invalid": 0}
    stale = Instruction.objects.exclude(checked_rules=RULES_VERSION, checked_digest=F("content_digest"))
    last = 0
    while True:
        rows = list(
            stale.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "type", "question", "options", "answer", "content_digest")[:batch_size]
        )
        if not rows:
            return counts
        valid = [
            (pk, digest)
            for pk, type_, question, options, answer, digest in rows
            if not check_instruction(type_, question, options, answer)
        ]
        _mark_checked(valid)
        counts["checked"] += len(rows)
        counts["valid"] += len(valid)
        counts["invalid"] += len(rows) - len(valid)
        last = rows[-1][0]
        if on_batch is not None:
            on_batch(counts)


def _mark_checked(rows: list[tuple[int, str]]) -> None:
    """checked_digest := the given digest, checked_rules := RULES_VERSION, for (id, digest) pairs — in
    one statement on PostgreSQL (unnest of two arrays), else executemany. (The ORM's bulk_update builds
    a CASE per row: 350 s for 1M rows, measured.)"""
    if not rows:
        return
    table = Instruction._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ids, digests = zip(*rows, strict=True)
            cursor.execute(
                f"UPDATE {table} AS i SET checked_digest = v.digest, checked_rules = %s "
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, digest) WHERE i.id = v.id",
                [RULES_VERSION, list(ids), list(digests)],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET checked_digest = %s, checked_rules = %s WHERE id = %s",
                [(digest, RULES_VERSION, pk) for pk, digest in rows],
            )


def current_caption(image: Image) -> Caption | None:
    """The caption the instruction stage reads: the newest accepted one, else the newest draft."""
    captions = Caption.objects.filter(image=image)
    return (
        captions.filter(status=ItemStatus.ACCEPTED).order_by("-id").first()
        or captions.filter(status=ItemStatus.DRAFT).order_by("-id").first()
    )
