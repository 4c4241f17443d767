"""The `verify` stage: a vision model sees an image, its caption and its draft instructions, and judges
each instruction — supported, unsupported (with one of the six hallucination categories) or unsure —
with a reason. One unit per image (key: image × stage × prompt version × endpoint, like the caption
stage), so a redelivered or repeated job never asks twice; the verdicts are stored through
corpus.services.quality with the endpoint, model, prompt version, tokens and cost of the call (split
evenly over the items), in the same transaction that marks the unit done.

Called by drafting.prepare / drafting.write_result and the runner for units of this stage only.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from corpus.models import HALLUCINATION_CATEGORIES, Instruction, ItemStatus, VerdictValue
from corpus.services import items as corpus_services
from corpus.services import quality as quality_service

from ..models import GenerationUnit
from . import drafting
from . import prompts as prompt_service
from . import units as unit_service

CATEGORIES = [value for value, _ in HALLUCINATION_CATEGORIES]
# The most draft instructions one call judges (an image has ~12 from the instruction stage); more wait
# for a later round.
MAX_ITEMS = 60

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "verdicts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "verdict": {"type": "string", "enum": list(VerdictValue.values)},
                    "reason": {"type": "string"},
                    "category": {"type": "string", "enum": ["", *CATEGORIES]},
                },
                "required": ["id", "verdict", "reason", "category"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["verdicts"],
    "additionalProperties": False,
}


def item_line(row: dict) -> str:
    """One instruction as the prompt shows it: a JSON object on one line, with its id."""
    data = {"id": row["id"], "type": row["type"], "question": row["question"]}
    if row["options"]:
        data["options"] = list(row["options"])
    data["answer"] = row["answer"]
    return json.dumps(data, ensure_ascii=False)


def prepare(unit: GenerationUnit, params: dict) -> drafting.Request:
    """The request for one image: its picture, current caption and draft instructions (no network)."""
    image = unit.image
    rows = list(
        Instruction.objects.filter(image=image, status=ItemStatus.DRAFT)
        .order_by("id")
        .values("id", "version", "type", "question", "options", "answer")[:MAX_ITEMS]
    )
    if not rows:
        raise drafting.UnitCannotRun("the image has no draft instructions to verify")
    caption = corpus_services.current_caption(image)
    text = prompt_service.render(
        unit.prompt.text,
        {
            "domain": image.domain.name,
            "domain_description": image.domain.description,
            "prior_knowledge": image.prior_knowledge,
            "ocr_text": image.ocr_text,
            "language": unit.prompt.get_language_display(),
            "caption": caption.text if caption else "",
            "instructions": "\n".join(item_line(r) for r in rows),
        },
    )
    return drafting.Request(
        unit_id=unit.pk,
        stage=unit.stage,
        prompt=text,
        image_data_url=drafting.image_data_url(image),
        schema=VERDICT_SCHEMA if unit.endpoint.supports_json_schema else None,
        schema_name="verdicts",
        n=len(rows),
        caption_id=caption.pk if caption else None,
        est_tokens=len(text) // 4 + 1000,
        extra={"versions": {r["id"]: r["version"] for r in rows}},
    )


def parse_verdicts(text: str, request: drafting.Request) -> list[dict]:
    """One verdict per item of the request: {"id", "verdict", "reason", "category"}. Tolerant of case,
    fences and an unknown category (→ "other" for an unsupported item, "" for the others); an answer
    that misses an item or is not JSON is malformed output (retried like one)."""
    data = next(drafting.json_values(text), None)
    if data is None:
        raise drafting.MalformedOutput(f"the answer is not the JSON asked for: {(text or '')[:120]!r}")
    raw = data.get("verdicts") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise drafting.MalformedOutput("the answer has no list of verdicts")
    wanted = {int(k) for k in request.extra["versions"]}
    found: dict[int, dict] = {}
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        try:
            item_id = int(entry.get("id"))
        except (TypeError, ValueError):
            continue
        verdict = str(entry.get("verdict") or "").strip().lower()
        if item_id not in wanted or item_id in found or verdict not in VerdictValue.values:
            continue
        category = str(entry.get("category") or "").strip().lower()
        if verdict != VerdictValue.UNSUPPORTED:
            category = ""
        elif category not in CATEGORIES:
            category = "other"
        found[item_id] = {
            "id": item_id,
            "verdict": verdict,
            "reason": str(entry.get("reason") or "").strip()[:2000],
            "category": category,
        }
    missing = sorted(wanted - set(found))
    if missing:
        raise drafting.MalformedOutput(
            f"no verdict for {len(missing)} of {len(wanted)} items (ids {', '.join(map(str, missing[:5]))})"
        )
    return [found[i] for i in sorted(found)]


def _share(total: Decimal | int, n: int, places: str) -> list:
    """`total` split into n shares that add up to it exactly (the remainder goes to the first)."""
    if isinstance(total, int):
        base, rest = divmod(total, n)
        return [base + (rest if i == 0 else 0) for i in range(n)]
    unit = Decimal(places)
    base = (Decimal(total) / n).quantize(unit, rounding=ROUND_HALF_UP)
    first = Decimal(total) - base * (n - 1)
    return [first] + [base] * (n - 1)


def write_result(
    unit: GenerationUnit,
    token: str,
    request: drafting.Request,
    *,
    verdicts: list[dict],
    model_name: str,
    usage: drafting.Usage,
) -> bool:
    """Store the verdicts and mark the unit done, together; False (nothing written) if the claim is lost.
    A redelivered task finds the unit done (the claim fails first); the (instruction, unit) uniqueness
    backs that up."""
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
                "drafts": len(verdicts),
            },
        )
        if not done:
            return False
        n = len(verdicts)
        costs = _share(usage.cost, n, "0.000001")
        tokens_in = _share(usage.tokens_in, n, "1")
        tokens_out = _share(usage.tokens_out, n, "1")
        versions = {int(k): v for k, v in request.extra["versions"].items()}
        quality_service.record_verdicts(
            [
                {
                    **v,
                    "item_version": versions[v["id"]],
                    "tokens_in": tokens_in[i],
                    "tokens_out": tokens_out[i],
                    "cost": costs[i],
                }
                for i, v in enumerate(verdicts)
            ],
            endpoint_name=unit.endpoint.name,
            model_name=f"{unit.endpoint.name}/{model_name}"[:200],
            prompt_version=unit.prompt.version,
            generation_unit_id=unit.pk,
        )
    return True
