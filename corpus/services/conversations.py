"""Multi-turn dialogues: storing one with its turns, and reading an image's dialogues for review.

A dialogue is a Conversation row and its turns are Instructions (`conversation`, `turn`): every turn is
written through `create_instruction` (the type rules, the first Revision, the image back in the review
queue) and edited later through `update_item` like any instruction — so review, revisions, conflicts and
the exports' rule check need nothing new. The status of a dialogue is the status of its turns.
"""

from __future__ import annotations

from django.db import transaction

from ..models import Caption, Conversation, Image, Instruction, ItemStatus, Origin
from .items import create_instruction

# The provenance a Conversation row keeps itself; every provenance field (these and any other the
# instructions carry) goes to each turn.
CONVERSATION_PROVENANCE = ("model_name", "prompt_version", "generation_unit_id")


def create_conversation(
    image: Image,
    *,
    turns: list[dict],
    caption: Caption | None = None,
    origin: str = Origin.MODEL,
    by=None,
    **provenance,
) -> Conversation:
    """Store a dialogue and its turns (1, 2, … in the order given) as drafts, in one transaction. Each
    turn is a dict with type, question, options and answer; a model turn that breaks its type's rules
    is kept as invalid with the reason, like any model instruction. `provenance` (model_name,
    prompt_version, generation_unit_id …) is written on every turn, as on any instruction. Not
    idempotent by itself: the generation unit's compare-and-swap (generation.services.drafting.
    write_result) makes it once."""
    own = {key: provenance[key] for key in CONVERSATION_PROVENANCE if key in provenance}
    with transaction.atomic():
        conversation = Conversation.objects.create(
            image=image, caption=caption, origin=origin, created_by=by, **own
        )
        for number, turn in enumerate(turns, start=1):
            create_instruction(
                image,
                type=str(turn.get("type") or ""),
                question=str(turn.get("question") or ""),
                answer=str(turn.get("answer") or ""),
                options=turn.get("options") or [],
                origin=origin,
                by=by,
                caption=caption,
                conversation=conversation,
                turn=number,
                **provenance,
            )
    return conversation


def split_turns(instructions: list[Instruction]) -> tuple[list[Instruction], list[dict]]:
    """(single instructions, dialogues) of one image's instructions as the review page loaded them: each
    dialogue is {"id", "turns"} with its turns in order. No query: it sorts what was read."""
    singles: list[Instruction] = []
    dialogues: dict[int, list[Instruction]] = {}
    for item in instructions:
        if item.conversation_id is None:
            singles.append(item)
        else:
            dialogues.setdefault(item.conversation_id, []).append(item)
    return singles, [
        {"id": cid, "turns": sorted(turns, key=lambda t: t.turn)} for cid, turns in sorted(dialogues.items())
    ]


def accepted_single_instructions(image: Image, *, limit: int = 20) -> list[Instruction]:
    """The image's accepted instructions that are not dialogue turns, oldest first (what a dialogue is
    written from)."""
    return list(
        Instruction.objects.filter(
            image=image, status=ItemStatus.ACCEPTED, conversation__isnull=True
        ).order_by("id")[:limit]
    )
