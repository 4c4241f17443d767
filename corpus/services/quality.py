"""Running the automatic checks (corpus/checks.py) and storing what they find (QualityFlag).

corpus.services.items calls `check_image` inside every write of an instruction (and of a caption, whose
text the grounding check reads), so the flags always describe the item as it is. One call reads the
image's instructions once, runs the pure checks on all of them (a set check such as the Judgement
balance depends on the others), looks the changed ones up in their domain by question key (an index,
not a scan), and writes only the difference: usually nothing, or one INSERT.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count, F

from .. import checks
from ..checks import CHECKS_VERSION, Check, Finding, Item
from ..models import Image, Instruction, ItemStatus, QualityFlag, Verdict

# Items the checks look at; a rejected or invalid one loses its flags (nobody will review it again).
LIVE = (ItemStatus.DRAFT, ItemStatus.ACCEPTED)
MEDIAN_TTL = 300.0  # seconds a domain's median answer length per type is reused
_medians: dict[tuple[int, str], tuple[float, float | None]] = {}


def clear_caches() -> None:
    """Forget the cached medians (tests that build a domain from nothing)."""
    _medians.clear()


def domain_median_words(domain_id: int, type_: str) -> float | None:
    """The median answer length (words) of the domain's newest QUALITY_LENGTH_PEERS live answers of the
    type, or None with fewer than QUALITY_LENGTH_MIN_PEERS; computed at most every MEDIAN_TTL s per
    process (the peers drift slowly, and the query reads up to QUALITY_LENGTH_PEERS rows)."""
    key = (domain_id, type_)
    cached = _medians.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    answers = list(
        Instruction.objects.filter(image__domain_id=domain_id, type=type_, status__in=LIVE)
        .order_by("-id")
        .values_list("answer", flat=True)[: settings.QUALITY_LENGTH_PEERS]
    )
    value = checks.peers_median(answers, settings.QUALITY_LENGTH_MIN_PEERS)
    _medians[key] = (now + MEDIAN_TTL, value)
    return value


def duplicate_in_domain(item: Item, *, key: str, image_id: int, domain_id: int) -> Finding | None:
    """Another image of the domain asks the same question: instructions with the same question key,
    found by instruction_question_key_idx, at most QUALITY_DUPLICATE_CANDIDATES of them, each confirmed
    by rapidfuzz. Flat in the size of the domain: the cost is the candidates read, not the rows."""
    if not key:
        return None
    candidates = (
        Instruction.objects.filter(question_key=key, image__domain_id=domain_id, status__in=LIVE)
        .exclude(image_id=image_id)
        .order_by()
        .values_list("id", "question")[: settings.QUALITY_DUPLICATE_CANDIDATES]
    )
    for other_id, other_question in candidates:
        score = checks.similar_questions(item.question, other_question, settings.QUALITY_SIMILARITY_THRESHOLD)
        if score is not None:
            return Finding(
                Check.DUPLICATE_IN_DOMAIN,
                f"{'the same question' if score == 100 else f'nearly the same question ({score:.0f}%)'} "
                f"is asked of another image of this domain (instruction {other_id})",
            )
    return None


def check_image(image_id: int, *, changed: Iterable[int] = ()) -> int:
    """Re-run the checks of the image's instructions after a write of the instructions `changed` (their
    domain duplicates are looked up again; the others keep theirs) and store the difference. Idempotent.
    Returns the number of flags on the image's draft instructions (kept in Image.n_flags)."""
    changed = set(changed)
    rows = list(
        Instruction.objects.filter(image_id=image_id).values_list(
            "id", "type", "question", "options", "answer", "status", "language", "question_key",
            "checked_quality", "caption__text", "image__domain_id", "image__n_flags",
        )
    )  # fmt: skip
    if not rows:
        return 0
    domain_id, n_flags_before = rows[0][10], rows[0][11]
    items: dict[int, Item] = {}
    status: dict[int, str] = {}
    new_keys: dict[int, str] = {}
    stale: list[int] = []
    for pk, type_, question, options, answer, st, language, key, version, caption, _, _ in rows:
        status[pk] = st
        live = st in LIVE
        wanted_key = checks.question_key(question) if live else ""
        if wanted_key != key:
            new_keys[pk] = wanted_key
        if not live:
            continue
        if version != CHECKS_VERSION:
            stale.append(pk)
            changed.add(pk)
        opts = tuple(o for o in (options or []) if isinstance(o, str))
        items[pk] = Item(pk, type_, question, opts, answer, language or "", caption or "")

    existing = {
        (iid, code): (pk, message)
        for pk, iid, code, message in QualityFlag.objects.filter(instruction_id__in=list(status)).values_list(
            "pk", "instruction_id", "code", "message"
        )
    }
    desired: dict[tuple[int, str], str] = {}
    listed = list(items.values())
    for pk, finding in checks.judgement_unbalanced(listed).items():
        desired[(pk, finding.code)] = finding.message
    for pk, finding in checks.duplicates_in_image(listed, settings.QUALITY_SIMILARITY_THRESHOLD).items():
        desired[(pk, finding.code)] = finding.message
    for pk, item in items.items():
        median = (
            domain_median_words(domain_id, item.type) if item.type in checks.LENGTH_CHECKED_TYPES else None
        )
        for finding in checks.item_findings(item, median_words=median, settings=settings):
            desired[(pk, finding.code)] = finding.message
        if pk in changed:
            key = new_keys.get(pk, checks.question_key(item.question))
            found = duplicate_in_domain(item, key=key, image_id=image_id, domain_id=domain_id)
            if found is not None:
                desired[(pk, found.code)] = found.message
        elif (pk, Check.DUPLICATE_IN_DOMAIN) in existing:
            desired[(pk, Check.DUPLICATE_IN_DOMAIN)] = existing[(pk, Check.DUPLICATE_IN_DOMAIN)][1]

    gone = [flag for key, (flag, message) in existing.items() if desired.get(key) != message]
    if gone:
        QualityFlag.objects.filter(pk__in=gone).delete()
    new = [
        QualityFlag(instruction_id=pk, code=code, message=message, checks_version=CHECKS_VERSION)
        for (pk, code), message in desired.items()
        if existing.get((pk, code), (None, None))[1] != message
    ]
    if new:
        # A concurrent write of the same image may have stored the same finding first: keep one.
        QualityFlag.objects.bulk_create(new, ignore_conflicts=True)
    for pk, key in new_keys.items():
        Instruction.objects.filter(pk=pk).update(question_key=key)
    if stale:
        Instruction.objects.filter(pk__in=stale).update(checked_quality=CHECKS_VERSION)
    n_flags = sum(1 for (pk, _code) in desired if status.get(pk) == ItemStatus.DRAFT)
    if n_flags != n_flags_before:
        Image.objects.filter(pk=image_id).update(n_flags=n_flags)
    return n_flags


def recheck_quality(*, batch_size: int = 500, on_batch=None) -> int:
    """Run the checks for every image with a live instruction not yet checked under CHECKS_VERSION (rows
    written before the checks existed or changed). Idempotent; returns how many images were checked."""
    done = 0
    last = 0
    stale = Instruction.objects.filter(status__in=LIVE).exclude(checked_quality=CHECKS_VERSION)
    while True:
        image_ids = list(
            stale.filter(image_id__gt=last)
            .order_by("image_id")
            .values_list("image_id", flat=True)
            .distinct()[:batch_size]
        )
        if not image_ids:
            return done
        for image_id in image_ids:
            check_image(image_id)
        done += len(image_ids)
        last = image_ids[-1]
        if on_batch is not None:
            on_batch(done)


def flags_of(instruction_ids: Iterable[int]) -> dict[int, list[QualityFlag]]:
    """The flags of these instructions, by instruction id (one query), for pages and the API."""
    out: dict[int, list[QualityFlag]] = {}
    for flag in QualityFlag.objects.filter(instruction_id__in=list(instruction_ids)).order_by("code"):
        out.setdefault(flag.instruction_id, []).append(flag)
    return out


def flag_counts() -> dict:
    """Flags by check, and by check × domain, × instruction type, × model (one grouped query)."""
    rows = (
        QualityFlag.objects.values(
            "code",
            type=F("instruction__type"),
            model=F("instruction__model_name"),
            domain=F("instruction__image__domain__name"),
        )
        .annotate(n=Count("id"))
        .order_by()
    )
    codes = list(checks.CHECK_LABELS)
    totals = dict.fromkeys(codes, 0)
    tables: dict[str, dict[str, dict[str, int]]] = {"domain": {}, "type": {}, "model": {}}
    for row in rows:
        totals[row["code"]] = totals.get(row["code"], 0) + row["n"]
        for table in tables:
            key = row[table] or "(unknown)"
            cell = tables[table].setdefault(key, dict.fromkeys(codes, 0))
            cell[row["code"]] = cell.get(row["code"], 0) + row["n"]
    out = {
        "checks": [(code, checks.CHECK_LABELS[code]) for code in codes],
        "totals": [totals[c] for c in codes],
        "total": sum(totals.values()),
    }
    for table, groups in tables.items():
        out[f"by_{table}"] = [
            {"key": key, "counts": [cells[c] for c in codes], "total": sum(cells.values())}
            for key, cells in sorted(groups.items())
        ]
    return out


def record_verdicts(verdicts: list[dict], **provenance) -> int:
    """Store the verifier's verdicts ({"id", "item_version", "verdict", "reason", "category", "tokens_in",
    "tokens_out", "cost"} each) with the call's provenance (endpoint_name, model_name, prompt_version,
    generation_unit_id). Idempotent: one verdict per instruction and unit; an instruction deleted since
    the call is skipped. Returns how many were stored."""
    ids = set(Instruction.objects.filter(pk__in=[v["id"] for v in verdicts]).values_list("pk", flat=True))
    rows = [
        Verdict(
            instruction_id=v["id"],
            item_version=v["item_version"],
            verdict=v["verdict"],
            reason=v["reason"],
            category=v["category"],
            tokens_in=v["tokens_in"],
            tokens_out=v["tokens_out"],
            cost=v["cost"],
            **provenance,
        )
        for v in verdicts
        if v["id"] in ids
    ]
    return len(Verdict.objects.bulk_create(rows, ignore_conflicts=True))
