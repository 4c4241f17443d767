"""From a unit to a model request, and from a model answer to drafts (through corpus.services only).

`prepare` runs before the call (reads the caption and seeds; the claim loaded the unit's image);
`parse_instructions` is pure; `write_result` marks the unit done and stores the drafts in ONE
transaction, and only if this worker still holds the unit's claim — so a redelivered or duplicated task
can never make a second draft.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from PIL import Image as PILImage

from corpus.models import Caption, Image, ItemStatus
from corpus.services import items as corpus_services

from ..models import GenerationUnit, Stage
from . import conversation as conversation_stage
from . import prompts as prompt_service
from . import units as unit_service


class MalformedOutput(ValueError):
    """The model answered, but not with what the prompt asked for (retried like a transient error)."""


class UnitCannotRun(ValueError):
    """Something the unit needs is missing (no caption, unreadable image): fails the unit at once."""


@dataclass
class Request:
    unit_id: int
    stage: str
    prompt: str
    image_data_url: str = ""
    schema: dict | None = None
    schema_name: str = "instructions"
    instruction_type: str = ""
    n: int = 0
    caption_id: int | None = None
    est_tokens: int = 0
    extra: dict = field(default_factory=dict)


def image_data_url(image: Image, max_side: int | None = None) -> str:
    """The image downscaled to `max_side` (longest side) as a base64 data URL (JPEG, or PNG with alpha)."""
    max_side = max_side or settings.GENERATION_IMAGE_MAX_SIDE
    try:
        with image.file.open("rb") as fh, PILImage.open(fh) as img:
            img.load()
            if max(img.size) > max_side:
                img.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
            has_alpha = img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info)
            buf = io.BytesIO()
            if has_alpha:
                img.convert("RGBA").save(buf, format="PNG", optimize=True)
                mime = "image/png"
            else:
                img.convert("RGB").save(buf, format="JPEG", quality=90)
                mime = "image/jpeg"
    except (OSError, ValueError) as e:
        raise UnitCannotRun(f"cannot read the image file: {e}") from e
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def caption_for_instructions(image: Image, *, include_drafts: bool) -> Caption | None:
    if include_drafts:
        return corpus_services.current_caption(image)
    return Caption.objects.filter(image=image, status=ItemStatus.ACCEPTED).order_by("-id").first()


def prepare(unit: GenerationUnit, params: dict) -> Request:
    """Everything the call needs, read from the database (no network)."""
    image = unit.image  # loaded with its domain by the claim
    if unit.stage == Stage.CONVERSATION:
        return conversation_stage.prepare(unit, params)
    if unit.stage == Stage.VERIFY:
        from . import verify

        return verify.prepare(unit, params)
    if unit.stage == Stage.CAPTIONS:
        text = prompt_service.caption_prompt(unit.prompt, image)
        return Request(
            unit_id=unit.pk,
            stage=unit.stage,
            prompt=text,
            image_data_url=image_data_url(image),
            est_tokens=len(text) // 4 + 1000,  # roughly: the image at high detail is ~1000 tokens
        )
    caption = caption_for_instructions(image, include_drafts=params.get("include_drafts", True))
    if caption is None:
        raise UnitCannotRun("the image has no caption to write instructions from")
    n = int(params.get("n_per_type") or 3)
    rng = random.Random(unit.pk)  # the same seeds if the unit runs again
    seeds = prompt_service.sample_seeds(
        image.domain_id, unit.instruction_type, int(params.get("seeds_per_prompt", 2)), rng=rng
    )
    text = prompt_service.instruction_prompt(
        unit.prompt, image, caption_text=caption.text, type_=unit.instruction_type, n=n, seeds=seeds
    )
    return Request(
        unit_id=unit.pk,
        stage=unit.stage,
        prompt=text,
        schema=prompt_service.instruction_schema(unit.instruction_type)
        if unit.endpoint.supports_json_schema
        else None,
        schema_name=f"{unit.instruction_type}_instructions",
        instruction_type=unit.instruction_type,
        n=n,
        caption_id=caption.pk,
        est_tokens=len(text) // 4,
        extra={"seed_questions": [s.question for s in seeds]},
    )


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def json_values(text: str):
    """The JSON values a model answer may hold, in the order to try them: inside each code fence, then
    the whole text; in each, the outermost {...}, then the outermost [...]. Prose around them is skipped."""
    text = text or ""
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        candidate = candidate.strip()
        for opener, closer in (("{", "}"), ("[", "]")):
            start, end = candidate.find(opener), candidate.rfind(closer)
            if start == -1 or end <= start:
                continue
            try:
                yield json.loads(candidate[start : end + 1])
            except ValueError:
                continue


def json_list(text: str, keys: tuple[str, ...], *, single_key: str = "") -> list | None:
    """The list a model answer holds: a bare list, or the first of `keys` in an object that is a list
    (or, with `single_key`, an object holding that key as a list of one). None when there is none."""
    for data in json_values(text):
        if isinstance(data, list):
            return data
        if isinstance(data, dict):
            for key in keys:
                if isinstance(data.get(key), list):
                    return data[key]
            if single_key and single_key in data:
                return [data]
    return None


def parse_instructions(text: str) -> list:
    """The list of instruction items in a model answer. Tolerant of code fences and prose around the
    JSON, and of a bare list or another key than "instructions"; strict about it being JSON."""
    items = json_list(text, ("instructions", "questions", "items", "data"), single_key="question")
    if items is None:
        raise MalformedOutput(f"the answer is not the JSON asked for: {(text or '')[:120]!r}")
    return items


def _normalized(question) -> str:
    return " ".join(str(question or "").lower().split())


def exactly_n(items: list, request: Request) -> list:
    """The first `request.n` items of a model answer: the prompt asks for exactly n, and a model may
    return more (often the seed questions copied back, then its own). Copies of the prompt's seed
    questions are dropped first. Fewer than n is malformed output (retried like one)."""
    if not request.n:
        return items
    seeds = {_normalized(q) for q in request.extra.get("seed_questions", [])}
    own = [i for i in items if not (isinstance(i, dict) and _normalized(i.get("question")) in seeds)]
    if len(own) < request.n:
        copied = len(items) - len(own)
        raise MalformedOutput(
            f"asked for {request.n} questions, got {len(own)}"
            + (f" (and {copied} copied from the seed examples)" if copied else "")
        )
    return own[: request.n]


def parse_answer(request: Request, text: str) -> tuple[str, list | None]:
    """(text, items) of a model answer for write_result, or MalformedOutput: the caption as it is, the
    instructions (exactly n) or the turns of a dialogue."""
    if request.stage == Stage.CAPTIONS:
        return check_caption(text), None
    if request.stage == Stage.CONVERSATION:
        return text, conversation_stage.parse_turns(text)
    if request.stage == Stage.VERIFY:
        from . import verify

        return text, verify.parse_verdicts(text, request)
    return text, exactly_n(parse_instructions(text), request)


def check_caption(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise MalformedOutput("the model returned an empty caption")
    return text


@dataclass
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)
    latency_ms: int = 0
    attempts: int = 0


def write_result(
    unit: GenerationUnit,
    token: str,
    request: Request,
    *,
    text: str,
    items: list | None,
    model_name: str,
    usage: Usage,
) -> bool:
    """Store the drafts and mark the unit done, together; False (nothing written) if the claim is lost.

    `unit` is the claimed unit (claim_unit loads its endpoint, prompt and image). The move running → done
    comes first in the transaction: its compare-and-swap on the claim token takes the unit's row lock, so
    a worker whose claim was lost writes nothing, and a redelivered or duplicated task can never make a
    second draft."""
    if unit.stage == Stage.VERIFY:
        from . import verify

        return verify.write_result(unit, token, request, verdicts=items, model_name=model_name, usage=usage)
    if unit.stage != Stage.CAPTIONS:
        items = [
            item if isinstance(item, dict) else {"question": str(item)[:2000], "answer": ""}
            for item in items or []
        ]
    drafts = 1 if unit.stage == Stage.CAPTIONS else len(items)
    with transaction.atomic():
        done = unit_service.finish_unit(
            unit.pk,
            token,
            fields={
                "attempts": usage.attempts,
                "tokens_in": usage.tokens_in,
                "tokens_out": usage.tokens_out,
                "cost": usage.cost,
                "latency_ms": usage.latency_ms,
                "drafts": drafts,
            },
        )
        if not done:
            return False
        provenance = {
            "model_name": f"{unit.endpoint.name}/{model_name}"[:200],
            "prompt_version": unit.prompt.version,
            "language": unit.prompt.language,
            "generation_unit_id": unit.pk,
        }
        if unit.stage == Stage.CAPTIONS:
            corpus_services.create_caption(
                unit.image,
                text=text,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
                latency_ms=usage.latency_ms,
                cost=usage.cost,
                **provenance,
            )
            return True
        if unit.stage == Stage.CONVERSATION:
            invalid = conversation_stage.store(unit, request, items, provenance=provenance)
            if invalid:
                GenerationUnit.objects.filter(pk=unit.pk).update(invalid=invalid)
            return True
        caption = Caption.objects.filter(pk=request.caption_id).first()
        invalid = 0
        for item in items:
            options = item.get("options")
            made = corpus_services.create_instruction(
                unit.image,
                type=unit.instruction_type,
                question=str(item.get("question") or ""),
                answer=str(item.get("answer") or ""),
                options=options if isinstance(options, list) else ([] if options in (None, "") else options),
                caption=caption,
                **provenance,
            )
            invalid += made.status == ItemStatus.INVALID
        if invalid:  # known only once corpus has checked each item against the rules of its type
            GenerationUnit.objects.filter(pk=unit.pk).update(invalid=invalid)
    return True
