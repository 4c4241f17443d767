"""Writes to captions and instructions: creation, edits with optimistic concurrency, status moves.

Every change goes through `update_item` (or the create functions) so that each one is checked against
the type rules, compare-and-swaps on the version the editor loaded, and leaves a Revision.
"""

import copy
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..models import Caption, Image, Instruction, ItemStatus, Origin, ReviewStatus, Revision, RevisionAction
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
from . import quality
from .review_state import NotHeld, finish_if_done, lease_duration, mark_pending


class StaleVersion(Exception):
    """The item changed since the editor loaded it. `current` is the item as it is now; `yours` what the
    editor sent (version, changes, status), when known. The API answers 409 with both (API_ERROR_STATUS,
    `api_extra`)."""

    def __init__(self, current, *, yours: dict | None = None):
        self.current = current
        self.yours = yours
        if yours is not None:
            message = f"The item is at version {current.version}, not {yours['version']}."
        else:
            message = f"{type(current).__name__} {current.pk} is at version {current.version}"
        super().__init__(message)

    @property
    def api_extra(self) -> dict:
        current = self.current
        shown = {"id": current.pk, "image": current.image_id}
        shown.update({name: getattr(current, name) for name in current.EDITABLE_FIELDS})
        for name in ("status", "origin", "model_name", "version", "reason", "updated_at"):
            shown[name] = getattr(current, name)
        extra = {"code": "stale_version", "current": shown}
        if self.yours is not None:
            extra["yours"] = self.yours
        return extra


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
            quality.check_image(image.pk, changed=[instruction.pk])
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


@dataclass
class ItemSaved:
    """What decide_item did: the item as saved (its new version), the id of the Revision it wrote, and
    whether the save decided the image's last draft and so finished the image (with holding_lease)."""

    item: Caption | Instruction
    revision_id: int
    image_done: bool = False


@dataclass
class _Plan:
    """A checked change of one item, computed before anything is written."""

    current: Caption | Instruction  # the item with the change applied (version not yet bumped)
    before: dict
    after: dict
    updates: dict  # column → value, besides version
    action: str
    valid: bool  # an instruction whose content passed corpus.rules (its verdict is remembered)
    remembered: bool  # …and the row already remembers that verdict for this content


def _plan(item, *, by, changes: dict, status: str | None, reason: str, now) -> _Plan:
    """Apply the change to a copy of `item` and check it: the status table (InvalidTransition), the type
    rules of what is kept for review or training (InstructionRuleError; a rejected item may stay
    broken). Writes nothing."""
    model = type(item)
    current = copy.copy(item)
    before = current.snapshot()
    for field, value in changes.items():
        setattr(current, field, value)
    new_status = status or current.status
    if new_status != current.status:
        check_move(model, "status", current.status, new_status)
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
    current.status = new_status
    current.updated_at = now
    updates = {field: getattr(current, field) for field in model.EDITABLE_FIELDS}
    updates.update(status=new_status, reason=current.reason, updated_at=now)
    if status is not None and new_status != before["status"]:
        updates.update(reviewed_by_id=by.pk if by is not None else None, reviewed_at=now)
        current.reviewed_by_id, current.reviewed_at = updates["reviewed_by_id"], now
    action = _ACTION_FOR_STATUS[new_status] if new_status != before["status"] else RevisionAction.EDITED
    valid = violations == []
    return _Plan(
        current=current,
        before=before,
        after=current.snapshot(),
        updates=updates,
        action=action,
        valid=valid,
        remembered=valid and _check_remembered(current, before),
    )


def _decides_a_draft(plan: _Plan) -> bool:
    """Whether the save decides a draft — the only kind of save that can finish the image. An edit of an
    item already decided (on a reopened image, say) keeps the lease: the annotator may change more, and
    the image is finished when they release it or their lease runs out."""
    return plan.before["status"] == ItemStatus.DRAFT and plan.after["status"] != ItemStatus.DRAFT


def decide_item(
    item: Caption | Instruction,
    *,
    actor,
    expected_version: int,
    status: str | None = None,
    changes: dict | None = None,
    reason: str = "",
    note: str = "",
    holding_lease: bool = False,
) -> ItemSaved:
    """Decide (accept, reject, reopen) and/or edit one caption or instruction as `actor` — a person, or a
    system user — if it is still at `expected_version`; one Revision records it.

    `item` is the item as the caller read it (its fields are the change's "before"; the write
    compare-and-swaps on its version and status, so a row that moved on is a StaleVersion, never an
    overwrite). With `holding_lease`, the save happens only while `actor` holds the image's review lease:
    the lease is renewed, and when this save decided the image's last draft the image is finished
    (in_review → reviewed, one ImageEvent) — `image_done` says so. On PostgreSQL all of that is one
    statement (data-modifying CTEs), atomic by itself; elsewhere a few, in one transaction.

    Not idempotent: a repeat with the same expected_version raises StaleVersion, which is how a double
    submit is told apart from a second edit. Raises InstructionRuleError when the result breaks the type
    rules (a rejection may keep broken content) and, whatever the status, when the changes are unusable
    (check_changes) — nothing is written then; InvalidTransition for a move the table does not allow;
    review_state.NotHeld when `holding_lease` and the actor does not hold the lease (nothing is written:
    the caller may take a lapsed lease back and try again)."""
    model = type(item)
    changes = dict(changes or {})
    unusable = check_changes(model, changes, reason=reason, note=note)
    if unusable:
        raise InstructionRuleError(unusable)
    if connection.vendor != "postgresql":
        saved = _decide_portable(
            item,
            actor=actor,
            expected_version=expected_version,
            status=status,
            changes=changes,
            reason=reason,
            note=note,
            holding_lease=holding_lease,
        )
        _recheck(saved.item, changes, was=item.status)
        return saved
    yours = {"version": expected_version, "changes": changes, "status": status}
    if item.version != expected_version:
        # The caller's copy is not the version the editor loaded: read the row as it is now.
        item = model.objects.select_related("image").get(pk=item.pk)
        if item.version != expected_version:
            raise StaleVersion(item, yours=yours)
    now = timezone.now()
    plan = _plan(item, by=actor, changes=changes, status=status, reason=reason, now=now)
    outcome = _write_pg(
        item,
        plan,
        actor=actor,
        expected_version=expected_version,
        note=note,
        now=now,
        holding_lease=holding_lease,
    )
    if outcome is None:  # nothing was written: the row moved on, or the lease is not the actor's
        current = model.objects.get(pk=item.pk)
        if not holding_lease or current.version != expected_version or current.status != item.status:
            raise StaleVersion(current, yours=yours)
        raise NotHeld("You do not hold this image. Take it (or reopen it) to work on it.")
    revision_id, image_done = outcome
    plan.current.version = expected_version + 1
    _recheck(plan.current, changes, was=plan.before["status"])
    return ItemSaved(item=plan.current, revision_id=revision_id, image_done=image_done)


def _recheck(saved: Caption | Instruction, changes: dict, *, was: str) -> None:
    """An edit re-runs the automatic checks (corpus.services.quality) on the content as saved — a
    caption's text is what its instructions are checked against. So does a decision that takes an
    instruction out of the checked set or back into it (a reject, an un-reject): a rejected item loses its
    flags, and its siblings' duplicate and Judgement-balance findings stop counting it. An accept of a
    draft changes no finding and runs nothing (decide_plain's one statement stays one)."""
    is_instruction = isinstance(saved, Instruction)
    if changes:
        quality.check_image(saved.image_id, changed=[saved.pk] if is_instruction else ())
    elif is_instruction and (was in quality.LIVE) != (saved.status in quality.LIVE):
        quality.check_image(saved.image_id, changed=[saved.pk])


# The save on PostgreSQL, in one statement (docs/performance.md, "A save"). `lease` renews the actor's
# lease — or finishes the image when this save decides its last draft — only while the actor holds it and
# the item is still at the loaded version and status. That check locks the item row (FOR UPDATE: after a
# wait it is re-checked on the row as committed), so once `lease` matched, `upd` — the swap, on the same
# conditions — cannot fail: the statement writes all of it or nothing, and is atomic on its own (no
# transaction is needed around it). Locks are taken item first, then image; nothing on PostgreSQL locks
# an image and then one of its items, so two saves cannot deadlock. `rev` records the Revision,
# `finished` the image's event. The final row says what happened: nothing written (the row moved on, or
# the lease is not the actor's), or the revision id and whether the image was finished.
_PG_LEASE_SQL = """
lease AS (
    UPDATE corpus_image AS i
    SET review_status = CASE WHEN f.done THEN 'reviewed' ELSE i.review_status END,
        leased_by_id = CASE WHEN f.done THEN NULL ELSE i.leased_by_id END,
        lease_expires_at = CASE WHEN f.done THEN NULL ELSE %(until)s END
    FROM (
        SELECT %(decides)s
            AND NOT EXISTS (
                SELECT 1 FROM corpus_instruction WHERE image_id = %(image)s AND status = 'draft'
                AND id <> %(instruction)s)
            AND NOT EXISTS (
                SELECT 1 FROM corpus_caption WHERE image_id = %(image)s AND status = 'draft'
                AND id <> %(caption)s) AS done
    ) AS f
    WHERE i.id = %(image)s AND i.review_status = 'in_review' AND i.leased_by_id = %(actor)s
        AND EXISTS (
            SELECT 1 FROM {table} WHERE id = %(id)s AND version = %(version)s AND status = %(was)s
            FOR UPDATE)
    RETURNING i.id, i.review_status
), finished AS (
    INSERT INTO corpus_imageevent (image_id, from_status, to_status, actor_id, at, note)
    SELECT id, 'in_review', 'reviewed', %(actor)s, %(now)s, 'all drafts decided' FROM lease
    WHERE review_status = 'reviewed'
),"""

_PG_SAVE_SQL = """
WITH {lease}
upd AS (
    UPDATE {table} SET {assignments}, version = version + 1
    WHERE id = %(id)s AND version = %(version)s AND status = %(was)s {lease_held}
    RETURNING id, version
), rev AS (
    INSERT INTO corpus_revision ({fk}, version, action, by_id, at, before, after, note)
    SELECT id, version, %(action)s, %(actor)s, %(now)s, %(before)s, %(after)s, %(note)s FROM upd
    RETURNING id
)
SELECT (SELECT id FROM rev), {lease_matched}, {image_done}
"""


def _write_pg(
    item, plan: _Plan, *, actor, expected_version, note, now, holding_lease
) -> tuple[int, bool] | None:
    """Run _PG_SAVE_SQL: (revision id, image finished), or None when nothing was written."""
    from psycopg.types.json import Jsonb

    model = type(item)
    table = model._meta.db_table
    params = {
        "id": item.pk,
        "version": expected_version,
        "was": plan.before["status"],
        "action": plan.action,
        "actor": actor.pk if actor is not None else None,
        "now": now,
        "before": Jsonb(plan.before),
        "after": Jsonb(plan.after),
        "note": note,
    }
    assignments = []
    for column, value in plan.updates.items():
        if column == "options":
            params["set_options"] = Jsonb(value)
        else:
            params[f"set_{column}"] = value
        assignments.append(f"{column} = %(set_{column})s")
    if model is Instruction and plan.valid and not plan.remembered:
        # The rules' verdict on the new content, remembered in the same UPDATE: the digest the database
        # computes for content_digest (corpus.models), over the values being written.
        assignments.append(
            "checked_digest = md5(%(set_type)s || chr(31) || %(set_question)s || chr(31) "
            "|| (%(set_options)s::jsonb)::text || chr(31) || %(set_answer)s), checked_rules = %(rules)s"
        )
        params["rules"] = RULES_VERSION
    lease = lease_held = ""
    lease_matched, image_done = "true", "false"
    if holding_lease:
        lease = _PG_LEASE_SQL.format(table=table)
        lease_held = "AND EXISTS (SELECT 1 FROM lease)"
        lease_matched = "EXISTS (SELECT 1 FROM lease)"
        image_done = "EXISTS (SELECT 1 FROM lease WHERE review_status = 'reviewed')"
        params.update(
            image=item.image_id,
            until=now + lease_duration(),
            decides=_decides_a_draft(plan),
            instruction=item.pk if model is Instruction else 0,
            caption=item.pk if model is Caption else 0,
        )
    sql = _PG_SAVE_SQL.format(
        lease=lease,
        table=table,
        assignments=", ".join(assignments),
        lease_held=lease_held,
        fk=f"{model.__name__.lower()}_id",
        lease_matched=lease_matched,
        image_done=image_done,
    )
    # One statement is atomic by itself: inside the caller's transaction it joins it, outside it commits
    # alone (no BEGIN and COMMIT round trips around it).
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        revision_id, lease_matched_row, done = cursor.fetchone()
    if revision_id is None:
        if holding_lease and lease_matched_row:  # pragma: no cover - the item lock rules it out
            raise AssertionError("the lease matched but the item was not swapped")
        return None
    return revision_id, bool(done)


# A plain decision (a status, no edit, no marks) on PostgreSQL in one statement, without reading the item
# first: `cur` locks the item if it is still at the loaded version, in a status the table lets move to the
# new one, and — for accept or reopen — known to pass the rules without running them here: an instruction
# whose remembered verdict is current (the exports' own test), a caption with a letter or digit and no
# control character at all (stricter than the text rule, which allows tab and line breaks: a caption this
# refuses takes the full path, which applies the rule itself). `lease`, `finished` as in _PG_LEASE_SQL;
# `upd` swaps the item; `rev` records the Revision with before/after built from the rows (the fields of
# snapshot()). No row back means the fast path did not apply — the caller reads the item and takes the
# full path (decide_item), which says why or saves.
_PG_PLAIN_SQL = """
WITH cur AS (
    SELECT * FROM {table}
    WHERE id = %(id)s AND version = %(version)s AND status = ANY(%(froms)s) {valid}
    FOR UPDATE
), {lease}
upd AS (
    UPDATE {table} AS t
    SET status = %(to)s, reason = {reason}, updated_at = %(now)s, reviewed_by_id = %(actor)s,
        reviewed_at = %(now)s, version = t.version + 1
    FROM cur WHERE t.id = cur.id {lease_held}
    RETURNING {returning}
), rev AS (
    INSERT INTO corpus_revision ({fk}, version, action, by_id, at, before, after, note)
    SELECT upd.id, upd.version, %(action)s, %(actor)s, %(now)s, {before}, {after}, %(note)s
    FROM upd JOIN cur ON cur.id = upd.id
    RETURNING id
)
SELECT (SELECT id FROM rev), {image_done}, (SELECT status FROM cur), upd.* FROM upd
"""
# Stricter than corpus.rules' text rule (which also allows tab, line feed and carriage return): a caption
# that passes this passes the rule. NUL and lone surrogates cannot be stored in PostgreSQL text at all.
_PG_NO_CONTROL_CHARACTER = "[\\u0001-\\u001f\\u007f-\\u009f]"


def decide_plain(
    model: type[Caption] | type[Instruction],
    item_id: int,
    *,
    actor,
    expected_version: int,
    status: str,
    reason: str = "",
    note: str = "",
    holding_lease: bool = False,
) -> ItemSaved | None:
    """decide_item for a plain decision — `status`, no edit — in one statement on PostgreSQL, without
    reading the item first. Returns None, having written nothing, whenever that path does not apply (not
    PostgreSQL, an unknown item, a stale version, a refused move, content whose check is not known to
    pass, a lease that is not the actor's): the caller then reads the item and calls decide_item, which
    raises the error or saves. The same guarantees as decide_item: lease, compare-and-swap, Revision,
    image finished with its event when no draft is left."""
    if connection.vendor != "postgresql" or check_changes(model, {}, reason=reason, note=note):
        return None
    froms = [f for f, moves in model.STATUS_MOVES["status"].items() if status in moves and f != status]
    table = model._meta.db_table
    fields = [f for f in model._meta.concrete_fields]
    valid = ""
    if status in (ItemStatus.DRAFT, ItemStatus.ACCEPTED):
        if model is Instruction:
            valid = "AND checked_rules = %(rules)s AND checked_digest = content_digest"
        else:
            valid = "AND text ~ '[[:alnum:]]' AND text !~ %(control)s"
    snapshot = [*model.EDITABLE_FIELDS, "status", "reason"]

    def as_json(alias: str) -> str:
        return "jsonb_build_object(" + ", ".join(f"'{f}', {alias}.{f}" for f in snapshot) + ")"

    now = timezone.now()
    params = {
        "id": item_id,
        "version": expected_version,
        "froms": froms,
        "to": status,
        "reason_given": reason,
        "actor": actor.pk if actor is not None else None,
        "now": now,
        "action": _ACTION_FOR_STATUS[status],
        "note": note,
        "rules": RULES_VERSION,
        "control": _PG_NO_CONTROL_CHARACTER,
    }
    lease, lease_held, image_done = "", "", "false"
    if holding_lease:
        lease = _PG_PLAIN_LEASE_SQL
        lease_held = "AND EXISTS (SELECT 1 FROM lease)"
        image_done = "EXISTS (SELECT 1 FROM lease WHERE review_status = 'reviewed')"
        params.update(
            until=now + lease_duration(),
            decides=status != ItemStatus.DRAFT,
        )
        lease = lease.format(
            instruction_excluded="cur.id" if model is Instruction else "0",
            caption_excluded="cur.id" if model is Caption else "0",
        )
    sql = _PG_PLAIN_SQL.format(
        table=table,
        valid=valid,
        lease=lease,
        lease_held=lease_held,
        reason=(
            "COALESCE(NULLIF(%(reason_given)s, ''), NULLIF(cur.reason, ''), 'rejected')"
            if status == ItemStatus.REJECTED
            else "''"
        ),
        returning=", ".join(f"t.{f.column}" for f in fields),
        fk=f"{model.__name__.lower()}_id",
        before=as_json("cur"),
        after=as_json("upd"),
        image_done=image_done,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    revision_id, done, was, *values = row
    values = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, values, strict=True)
    ]
    item = model.from_db(connection.alias, [f.attname for f in fields], values)
    _recheck(item, {}, was=was)
    return ItemSaved(item=item, revision_id=revision_id, image_done=bool(done))


_PG_PLAIN_LEASE_SQL = """
lease AS (
    UPDATE corpus_image AS i
    SET review_status = CASE WHEN f.done THEN 'reviewed' ELSE i.review_status END,
        leased_by_id = CASE WHEN f.done THEN NULL ELSE i.leased_by_id END,
        lease_expires_at = CASE WHEN f.done THEN NULL ELSE %(until)s END
    FROM cur, LATERAL (
        SELECT %(decides)s AND cur.status = 'draft'
            AND NOT EXISTS (
                SELECT 1 FROM corpus_instruction WHERE image_id = cur.image_id AND status = 'draft'
                AND id <> {instruction_excluded})
            AND NOT EXISTS (
                SELECT 1 FROM corpus_caption WHERE image_id = cur.image_id AND status = 'draft'
                AND id <> {caption_excluded}) AS done
    ) AS f
    WHERE i.id = cur.image_id AND i.review_status = 'in_review' AND i.leased_by_id = %(actor)s
    RETURNING i.id, i.review_status
), finished AS (
    INSERT INTO corpus_imageevent (image_id, from_status, to_status, actor_id, at, note)
    SELECT id, 'in_review', 'reviewed', %(actor)s, %(now)s, 'all drafts decided' FROM lease
    WHERE review_status = 'reviewed'
),"""


def _decide_portable(
    item, *, actor, expected_version, status, changes, reason, note, holding_lease
) -> ItemSaved:
    """decide_item on databases without data-modifying CTEs (SQLite): the same checks and writes as a
    few statements in one transaction — the lease renewed first, the row re-read, a compare-and-swap on
    the version, the Revision, the image finished through transition() when no draft is left."""
    model = type(item)
    yours = {"version": expected_version, "changes": changes, "status": status}
    image_done = False
    with transaction.atomic():
        if holding_lease and not Image.objects.filter(
            pk=item.image_id, review_status=ReviewStatus.IN_REVIEW, leased_by=actor
        ).update(lease_expires_at=timezone.now() + lease_duration()):
            current = model.objects.get(pk=item.pk)
            if current.version != expected_version:
                raise StaleVersion(current, yours=yours)
            raise NotHeld("You do not hold this image. Take it (or reopen it) to work on it.")
        current = model.objects.select_for_update().select_related("image").get(pk=item.pk)
        if current.version != expected_version:
            raise StaleVersion(current, yours=yours)
        now = timezone.now()
        plan = _plan(current, by=actor, changes=changes, status=status, reason=reason, now=now)
        # Compare-and-swap on the version as well as the row lock: SQLite has no SELECT … FOR UPDATE.
        swapped = model.objects.filter(pk=item.pk, version=expected_version).update(
            version=F("version") + 1, **plan.updates
        )
        if swapped != 1:
            raise StaleVersion(model.objects.get(pk=item.pk), yours=yours)
        if plan.valid and not plan.remembered:
            record_rules_check([current.pk])
        saved = plan.current
        saved.version = expected_version + 1
        revision = Revision.objects.create(
            version=saved.version,
            action=plan.action,
            by=actor,
            at=now,
            before=plan.before,
            after=plan.after,
            note=note,
            **{model.__name__.lower(): saved},
        )
        if holding_lease and _decides_a_draft(plan):
            image_done = finish_if_done(item.image_id, actor)
    return ItemSaved(item=saved, revision_id=revision.pk, image_done=image_done)


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
    """Edit and/or move the status of a caption or instruction, if it is still at `expected_version`
    (decide_item without a lease; `by` is the actor). Returns the item as saved, with its new version."""
    return decide_item(
        item,
        actor=by,
        expected_version=expected_version,
        status=status,
        changes=changes,
        reason=reason,
        note=note,
    ).item


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
