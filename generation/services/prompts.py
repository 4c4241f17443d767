"""Prompt templates: placeholder checks, new versions, the current template for a domain, rendering."""

from __future__ import annotations

import json
import random
import re

from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from corpus.languages import DEFAULT_LANGUAGE, Language
from corpus.models import Domain, Image, SeedQuestion
from corpus.rules import ANSWER_RULE, OPTION_LABELS, InstructionType

from .. import prompt_defaults
from ..models import PromptKind, PromptTemplate

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_COMMON = {"domain", "domain_description", "prior_knowledge", "ocr_text", "language"}
ALLOWED = {
    PromptKind.CAPTION: _COMMON,
    PromptKind.INSTRUCTION: _COMMON | {"caption", "seed_questions", "n", "type", "type_name", "answer_rule"},
    PromptKind.VERIFY: _COMMON | {"caption", "instructions"},
    PromptKind.CONVERSATION: _COMMON | {"caption", "instructions", "min_turns", "max_turns"},
}
REQUIRED = {
    PromptKind.CAPTION: set(),
    PromptKind.INSTRUCTION: {"caption", "n"},
    PromptKind.VERIFY: {"instructions"},
    PromptKind.CONVERSATION: {"caption", "instructions"},
}


class TemplateError(ValueError):
    """A template that cannot be saved; the message says which placeholder is wrong and what is allowed.
    `field` names the input at fault (the API answers 400 naming it, the page marks it)."""

    def __init__(self, message: str, *, field: str | None = "text"):
        super().__init__(message)
        self.field = field


class TemplateChanged(TemplateError):
    """Another editor kept saving a version of the same template at the same moment (the API answers 409)."""

    def __init__(self):
        super().__init__("the template changed while saving; try again", field=None)


def check_template(kind: str, text: str) -> list[str]:
    """The problems of a template text (empty list = fine)."""
    problems = []
    if not text.strip():
        return ["the template is empty"]
    used = set(PLACEHOLDER.findall(text))
    allowed = ALLOWED[PromptKind(kind)]
    for name in sorted(used - allowed):
        problems.append(
            f"unknown placeholder {{{{ {name} }}}}; a {kind} template may use: "
            + ", ".join(f"{{{{ {a} }}}}" for a in sorted(allowed))
        )
    for name in sorted(REQUIRED[PromptKind(kind)] - used):
        problems.append(f"a {kind} template must use {{{{ {name} }}}}")
    leftover = PLACEHOLDER.sub("", text)
    if "{{" in leftover or "}}" in leftover:
        problems.append("unbalanced '{{' or '}}': write placeholders as {{ name }}")
    return problems


def save_template(
    *,
    kind: str,
    text: str,
    by=None,
    domain: Domain | None = None,
    instruction_type: str = "",
    note: str = "",
    language: str | None = None,
) -> PromptTemplate:
    """Save `text` as the next version of the template (kind, domain, type) and make it current.
    `language` is what the prompt asks the model to write in (None: the previous version's, else
    English); the drafts of this version record it.

    Not idempotent: every call makes a version. Raises TemplateError for bad placeholders."""
    kind = PromptKind(kind)
    if kind == PromptKind.INSTRUCTION and instruction_type not in InstructionType.values:
        raise TemplateError(
            f"instruction_type must be one of {', '.join(InstructionType.values)}", field="instruction_type"
        )
    if kind != PromptKind.INSTRUCTION:
        instruction_type = ""
    if language is not None and language not in Language.values:
        raise TemplateError(f"language must be one of {', '.join(Language.values)}", field="language")
    problems = check_template(kind, text)
    if problems:
        raise TemplateError("; ".join(problems))
    key = Q(kind=kind, instruction_type=instruction_type) & (
        Q(domain=domain) if domain is not None else Q(domain__isnull=True)
    )
    for _ in range(3):  # two editors saving at once: the unique version constraint decides, retry once
        try:
            with transaction.atomic():
                latest = PromptTemplate.objects.filter(key).aggregate(v=Max("version"))["v"] or 0
                if language is None:
                    previous = PromptTemplate.objects.filter(key, version=latest).first()
                    language = previous.language if previous else DEFAULT_LANGUAGE
                PromptTemplate.objects.filter(key, is_current=True).update(is_current=False)
                return PromptTemplate.objects.create(
                    kind=kind,
                    domain=domain,
                    instruction_type=instruction_type,
                    version=latest + 1,
                    text=text,
                    note=note,
                    language=language,
                    is_current=True,
                    created_by=by,
                )
        except IntegrityError:
            continue
    raise TemplateChanged()


def ensure_default_prompts() -> None:
    """Create version 1 of each default template if there is no default yet. Idempotent (one query when
    they exist)."""
    existing = set(PromptTemplate.objects.filter(domain__isnull=True).values_list("kind", "instruction_type"))
    shipped = [
        (PromptKind.CAPTION, "", prompt_defaults.CAPTION),
        (PromptKind.VERIFY, "", prompt_defaults.VERIFY),
        (PromptKind.CONVERSATION, "", prompt_defaults.CONVERSATION),
    ]
    shipped += [(PromptKind.INSTRUCTION, t, text) for t, text in prompt_defaults.INSTRUCTION.items()]
    for kind, type_, text in shipped:
        if (kind, type_) in existing:
            continue
        # Version 1 or nothing: several first launches at once (a flushed database, many regenerations)
        # each try; the unique (kind, type, version) lets one win and the others find it made.
        try:
            with transaction.atomic():
                PromptTemplate.objects.create(
                    kind=kind, instruction_type=type_, version=1, text=text, note="shipped default"
                )
        except IntegrityError:
            continue


def current_template(kind: str, *, domain: Domain | None, instruction_type: str = "") -> PromptTemplate:
    """The current template for the domain, else the current default one."""
    base = PromptTemplate.objects.filter(kind=kind, instruction_type=instruction_type, is_current=True)
    if domain is not None:
        found = base.filter(domain=domain).first()
        if found:
            return found
    found = base.filter(domain__isnull=True).first()
    if found is None:
        ensure_default_prompts()
        found = base.filter(domain__isnull=True).first()
    return found


def render(text: str, values: dict[str, object]) -> str:
    """Fill the placeholders; empty values read as "(none)"."""

    def fill(match: re.Match) -> str:
        value = values.get(match.group(1), "")
        value = str(value).strip() if value is not None else ""
        return value or "(none)"

    return PLACEHOLDER.sub(fill, text)


def format_seed(seed: SeedQuestion) -> str:
    data = {"question": seed.question}
    if seed.type == InstructionType.MULTIPLE_CHOICE:
        data["options"] = list(seed.options or [])
    data["answer"] = seed.answer
    return json.dumps(data, ensure_ascii=False)


def sample_seeds(domain_id: int, type_: str, k: int, *, rng: random.Random) -> list[SeedQuestion]:
    """Up to k seed questions of the domain and type (none is fine: the prompt then says so)."""
    if k <= 0:
        return []
    seeds = list(SeedQuestion.objects.filter(domain_id=domain_id, type=type_))
    return rng.sample(seeds, min(k, len(seeds)))


def caption_prompt(template: PromptTemplate, image: Image) -> str:
    domain = image.domain
    return render(
        template.text,
        {
            "domain": domain.name,
            "domain_description": domain.description,
            "prior_knowledge": image.prior_knowledge,
            "ocr_text": image.ocr_text,
            "language": Language(template.language).label,
        },
    )


def instruction_prompt(
    template: PromptTemplate,
    image: Image,
    *,
    caption_text: str,
    type_: str,
    n: int,
    seeds: list[SeedQuestion],
) -> str:
    domain = image.domain
    return render(
        template.text,
        {
            "domain": domain.name,
            "domain_description": domain.description,
            "prior_knowledge": image.prior_knowledge,
            "ocr_text": image.ocr_text,
            "language": Language(template.language).label,
            "caption": caption_text,
            "n": n,
            "type": type_,
            "type_name": InstructionType(type_).label,
            "answer_rule": ANSWER_RULE[InstructionType(type_)],
            "seed_questions": "\n".join(format_seed(s) for s in seeds) or "(no examples for this domain yet)",
        },
    )


def instruction_schema(type_: str) -> dict:
    """The JSON schema of the instruction answer, for endpoints with structured outputs."""
    options: dict = {"type": "array", "items": {"type": "string"}}
    if type_ == InstructionType.MULTIPLE_CHOICE:
        answer = {"type": "string", "enum": list(OPTION_LABELS)}
    elif type_ == InstructionType.JUDGEMENT:
        answer = {"type": "string", "enum": ["Yes", "No"]}
    else:
        answer = {"type": "string"}
    item = {
        "type": "object",
        "properties": {"question": {"type": "string"}, "options": options, "answer": answer},
        "required": ["question", "options", "answer"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"instructions": {"type": "array", "items": item}},
        "required": ["instructions"],
        "additionalProperties": False,
    }
