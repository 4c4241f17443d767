"""The conversation stage: from an image's caption and its accepted instructions, the text endpoint
writes one dialogue of MIN_TURNS–MAX_TURNS turns, stored as draft turns (corpus.services.conversations).

The runner treats it like the instruction stage (structured output, retries, cost); this module holds
what differs: the request (`prepare`), the answer's check (`parse_turns`) and the write (`store`).
"""

from __future__ import annotations

import json

from corpus.models import Caption, Image, ItemStatus
from corpus.rules import JUDGEMENT_ANSWERS, OPTION_LABELS, SHORT_ANSWER_MAX_WORDS, InstructionType
from corpus.services import conversations as conversation_service
from corpus.services import items as corpus_services

from ..models import GenerationUnit, PromptTemplate

MIN_TURNS = 3
MAX_TURNS = 6
# The accepted instructions shown to the model: enough to anchor the facts, few enough to keep the prompt short.
MAX_SHOWN_INSTRUCTIONS = 20
SCHEMA_NAME = "conversation"


class NoMaterial(ValueError):
    """The image lacks what a dialogue is written from (a caption, accepted instructions)."""


def caption_for(image: Image, *, include_drafts: bool) -> Caption | None:
    if include_drafts:
        return corpus_services.current_caption(image)
    return Caption.objects.filter(image=image, status=ItemStatus.ACCEPTED).order_by("-id").first()


def format_instructions(instructions) -> str:
    """One JSON object per line: the checked facts the dialogue must agree with."""
    lines = []
    for item in instructions:
        data = {"question": item.question}
        if item.options:
            data["options"] = list(item.options)
        data["answer"] = item.answer
        lines.append(json.dumps(data, ensure_ascii=False))
    return "\n".join(lines)


def conversation_prompt(template: PromptTemplate, image: Image, *, caption_text: str, instructions) -> str:
    from .prompts import render

    domain = image.domain
    return render(
        template.text,
        {
            "domain": domain.name,
            "domain_description": domain.description,
            "prior_knowledge": image.prior_knowledge,
            "ocr_text": image.ocr_text,
            "caption": caption_text,
            "instructions": format_instructions(instructions),
            "min_turns": MIN_TURNS,
            "max_turns": MAX_TURNS,
        },
    )


def conversation_schema() -> dict:
    """The JSON schema of the answer, for endpoints with structured outputs."""
    turn = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": list(InstructionType.values)},
            "question": {"type": "string"},
            "options": {"type": "array", "items": {"type": "string"}},
            "answer": {"type": "string"},
        },
        "required": ["type", "question", "options", "answer"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "turns": {"type": "array", "items": turn, "minItems": MIN_TURNS, "maxItems": MAX_TURNS}
        },
        "required": ["turns"],
        "additionalProperties": False,
    }


def prepare(unit: GenerationUnit, params: dict):
    """The request of one conversation unit (no network). Raises drafting.UnitCannotRun when the image
    has no caption or no accepted instruction to write from."""
    from .drafting import Request, UnitCannotRun

    image = unit.image
    caption = caption_for(image, include_drafts=params.get("include_drafts", True))
    if caption is None:
        raise UnitCannotRun("the image has no caption to write a conversation from")
    instructions = conversation_service.accepted_single_instructions(image, limit=MAX_SHOWN_INSTRUCTIONS)
    if not instructions:
        raise UnitCannotRun("the image has no accepted instruction to write a conversation from")
    text = conversation_prompt(unit.prompt, image, caption_text=caption.text, instructions=instructions)
    return Request(
        unit_id=unit.pk,
        stage=unit.stage,
        prompt=text,
        schema=conversation_schema() if unit.endpoint.supports_json_schema else None,
        schema_name=SCHEMA_NAME,
        caption_id=caption.pk,
        est_tokens=len(text) // 4,
    )


def guess_type(question: str, options, answer: str) -> str:
    """The type a turn's shape says, for a turn whose model gave no known type: options → Multiple-Choice,
    Yes/No → Judgement, a few words → Short VQA, else Long VQA."""
    answer = (answer or "").strip()
    if isinstance(options, list) and options and answer.strip("().").upper() in OPTION_LABELS:
        return InstructionType.MULTIPLE_CHOICE
    if answer.rstrip(".!").strip().capitalize() in JUDGEMENT_ANSWERS:
        return InstructionType.JUDGEMENT
    if len(answer.split()) <= SHORT_ANSWER_MAX_WORDS and "\n" not in answer:
        return InstructionType.SHORT_VQA
    return InstructionType.LONG_VQA


def parse_turns(text: str) -> list[dict]:
    """The turns of a model answer, each {type, question, options, answer}: tolerant of code fences and
    prose around the JSON (as the instruction parser is), strict about the dialogue — MIN_TURNS or more
    turns, each with a question and an answer. Past MAX_TURNS only the first MAX_TURNS are kept (a
    dialogue's beginning is a dialogue). Raises drafting.MalformedOutput (retried like a transient error)."""
    from .drafting import MalformedOutput, json_list

    items = json_list(text, ("turns", "conversation", "dialogue", "messages"))
    if items is None:
        raise MalformedOutput(f"the answer is not the JSON asked for: {(text or '')[:120]!r}")
    turns = []
    for item in items[:MAX_TURNS]:
        if not isinstance(item, dict):
            raise MalformedOutput(f"a turn is not an object: {str(item)[:80]!r}")
        question = item.get("question") or item.get("user") or item.get("human")
        answer = item.get("answer") or item.get("assistant") or item.get("gpt")
        if (
            not isinstance(question, str)
            or not question.strip()
            or not isinstance(answer, str)
            or not answer.strip()
        ):
            raise MalformedOutput("every turn needs a question and an answer")
        options = item.get("options")
        options = options if isinstance(options, list) else []
        type_ = item.get("type")
        if type_ not in InstructionType.values:
            type_ = guess_type(question, options, answer)
        if type_ != InstructionType.MULTIPLE_CHOICE:
            options = []  # options of another type carry nothing (models echo the schema's empty list, or "")
        turns.append({"type": type_, "question": question, "options": options, "answer": answer})
    if len(turns) < MIN_TURNS:
        raise MalformedOutput(f"asked for {MIN_TURNS} to {MAX_TURNS} turns, got {len(turns)}")
    return turns


def store(unit: GenerationUnit, request, turns: list[dict], *, provenance: dict) -> int:
    """Write the dialogue (inside write_result's transaction, after the unit's compare-and-swap);
    returns how many of its turns broke their type's rules (kept as invalid)."""
    caption = Caption.objects.filter(pk=request.caption_id).first()
    conversation = conversation_service.create_conversation(
        unit.image, turns=turns, caption=caption, **provenance
    )
    return conversation.turns.filter(status=ItemStatus.INVALID).count()
