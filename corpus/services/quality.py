"""Running the automatic checks (corpus/checks.py) and storing what they find (QualityFlag).

corpus.services.items calls `check_image` inside every write of an instruction (and of a caption, whose
text the grounding check reads), so the flags always describe the item as it is. One call reads the
image's instructions once, runs the pure checks on all of them (a set check such as the Judgement
balance depends on the others), looks the changed ones up in their domain by question key (an index,
not a scan), and writes only the difference: usually nothing, or one INSERT.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import connection
from django.db.models import Count, F

from .. import checks
from ..checks import CHECKS_VERSION, Check, Finding, Item
from ..models import Caption, Image, Instruction, ItemStatus, QualityFlag, Verdict

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


def duplicates_in_domain(
    items: dict[int, tuple[Item, str]], *, image_id: int, domain_id: int
) -> dict[int, Finding]:
    """Another image of the domain asks the same question: for each item (id → (item, question key)),
    instructions with the same key, found by instruction_question_key_idx in ONE query for all of them
    (at most QUALITY_DUPLICATE_CANDIDATES per item), each confirmed by rapidfuzz. Flat in the size of the
    domain: the cost is the candidates read, not the rows."""
    keys = {key for _item, key in items.values() if key}
    if not keys:
        return {}
    candidates: dict[str, list[tuple[int, str]]] = {}
    keys = sorted(keys)
    # Raw SQL: this runs inside every instruction write, and the ORM's compilation of it costs more than
    # the index probe (docs/quality.md, "What the checks cost").
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.question_key, i.id, i.question FROM {_INSTRUCTION} i JOIN {_IMAGE} im ON im.id = i.image_id "
            f"WHERE i.question_key IN ({', '.join(['%s'] * len(keys))}) AND im.domain_id = %s "
            "AND i.status IN (%s, %s) AND i.image_id <> %s LIMIT %s",
            [*keys, domain_id, *LIVE, image_id, settings.QUALITY_DUPLICATE_CANDIDATES * len(keys)],
        )
        rows = cursor.fetchall()
    for key, other_id, other_question in rows:
        candidates.setdefault(key, []).append((other_id, other_question))
    found: dict[int, Finding] = {}
    for pk, (item, key) in items.items():
        for other_id, other_question in candidates.get(key, ()):
            score = checks.similar_questions(
                item.question, other_question, settings.QUALITY_SIMILARITY_THRESHOLD
            )
            if score is not None:
                found[pk] = Finding(
                    Check.DUPLICATE_IN_DOMAIN,
                    f"{'the same question' if score == 100 else f'nearly the same question ({score:.0f}%)'} "
                    f"is asked of another image of this domain (instruction {other_id})",
                )
                break
    return found


def _store_keys(keys: dict[int, str], checked: set[int]) -> None:
    """question_key := keys[id] for each id, and checked_quality := CHECKS_VERSION for the ids in
    `checked` — in one statement on PostgreSQL (unnest of three arrays)."""
    ids = sorted(set(keys) | checked)
    if not ids:
        return
    if connection.vendor != "postgresql":
        for pk in ids:
            fields = {"question_key": keys[pk]} if pk in keys else {}
            if pk in checked:
                fields["checked_quality"] = CHECKS_VERSION
            Instruction.objects.filter(pk=pk).update(**fields)
        return
    table = Instruction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS i SET "
            "question_key = COALESCE(v.key, i.question_key), "
            "checked_quality = CASE WHEN v.checked THEN %s ELSE i.checked_quality END "
            "FROM unnest(%s::bigint[], %s::text[], %s::bool[]) AS v(id, key, checked) WHERE i.id = v.id",
            [CHECKS_VERSION, ids, [keys.get(pk) for pk in ids], [pk in checked for pk in ids]],
        )


_INSTRUCTION = Instruction._meta.db_table
_IMAGE = Image._meta.db_table
_FLAG = QualityFlag._meta.db_table
# The image's instructions with what the checks read, and each one's stored flags as a JSON list of
# [id, code, message] (one round trip instead of two: this runs inside every instruction write).
_FLAGS_OF = {
    "postgresql": f"(SELECT json_agg(json_build_array(f.id, f.code, f.message)) FROM {_FLAG} f "
    "WHERE f.instruction_id = i.id)",
    "sqlite": f"(SELECT json_group_array(json_array(f.id, f.code, f.message)) FROM {_FLAG} f "
    "WHERE f.instruction_id = i.id)",
}
_SIBLINGS_SQL = (
    "SELECT i.id, i.type, i.question, i.options, i.answer, i.status, i.language, i.question_key, "
    "i.checked_quality, c.text, im.domain_id, im.n_flags, {flags} "
    f"FROM {_INSTRUCTION} i JOIN {_IMAGE} im ON im.id = i.image_id "
    f"LEFT JOIN {Caption._meta.db_table} c ON c.id = i.caption_id WHERE i.image_id = %s"
)


def check_image(image_id: int, *, changed: Iterable[int] = ()) -> int:
    """Re-run the checks of the image's instructions after a write of the instructions `changed` (their
    domain duplicates are looked up again; the others keep theirs) and store the difference. Idempotent.
    Returns the number of flags on the image's draft instructions (kept in Image.n_flags)."""
    changed = set(changed)
    with connection.cursor() as cursor:
        vendor = "postgresql" if connection.vendor == "postgresql" else "sqlite"
        cursor.execute(_SIBLINGS_SQL.format(flags=_FLAGS_OF[vendor]), [image_id])
        rows = cursor.fetchall()
    if not rows:
        return 0
    domain_id, n_flags_before = rows[0][10], rows[0][11]
    items: dict[int, Item] = {}
    status: dict[int, str] = {}
    new_keys: dict[int, str] = {}
    stale: list[int] = []
    existing: dict[tuple[int, str], tuple[int, str]] = {}
    for pk, type_, question, options, answer, st, language, key, version, caption, _, _, flags in rows:
        status[pk] = st
        if isinstance(flags, str):  # SQLite's JSON comes back as text (and "[]" without flags)
            flags = json.loads(flags)
        for flag_id, code, message in flags or ():
            if flag_id is not None:
                existing[(pk, code)] = (flag_id, message)
        live = st in LIVE
        wanted_key = checks.question_key(question) if live else ""
        if wanted_key != key:
            new_keys[pk] = wanted_key
        if not live:
            continue
        if version != CHECKS_VERSION:
            stale.append(pk)
            changed.add(pk)
        if isinstance(options, str):  # PostgreSQL's jsonb comes back parsed, SQLite's JSON as text
            options = json.loads(options)
        opts = tuple(o for o in (options or []) if isinstance(o, str))
        items[pk] = Item(pk, type_, question, opts, answer, language or "", caption or "")

    desired: dict[tuple[int, str], str] = {}
    listed = list(items.values())
    for pk, finding in checks.judgement_unbalanced(listed).items():
        desired[(pk, finding.code)] = finding.message
    for pk, finding in checks.duplicates_in_image(listed, settings.QUALITY_SIMILARITY_THRESHOLD).items():
        desired[(pk, finding.code)] = finding.message
    lookups: dict[int, tuple[Item, str]] = {}
    for pk, item in items.items():
        median = (
            domain_median_words(domain_id, item.type) if item.type in checks.LENGTH_CHECKED_TYPES else None
        )
        for finding in checks.item_findings(item, median_words=median, settings=settings):
            desired[(pk, finding.code)] = finding.message
        if pk in changed:
            lookups[pk] = (item, new_keys.get(pk, checks.question_key(item.question)))
        elif (pk, Check.DUPLICATE_IN_DOMAIN) in existing:
            desired[(pk, Check.DUPLICATE_IN_DOMAIN)] = existing[(pk, Check.DUPLICATE_IN_DOMAIN)][1]
    for pk, finding in duplicates_in_domain(lookups, image_id=image_id, domain_id=domain_id).items():
        desired[(pk, finding.code)] = finding.message

    gone = [flag for key, (flag, _message) in existing.items() if key not in desired]
    if gone:
        QualityFlag.objects.filter(pk__in=gone).delete()
    new = [
        QualityFlag(instruction_id=pk, code=code, message=message, checks_version=CHECKS_VERSION)
        for (pk, code), message in desired.items()
        if existing.get((pk, code), (None, None))[1] != message
    ]
    if new:
        # New findings and changed messages in one statement; a concurrent write of the same image that
        # stored the same finding first is overwritten with the same content, never duplicated.
        QualityFlag.objects.bulk_create(
            new,
            update_conflicts=True,
            unique_fields=["instruction", "code"],
            update_fields=["message", "checks_version", "created_at"],
        )
    _store_keys(new_keys, set(stale))
    n_flags = sum(1 for (pk, _code) in desired if status.get(pk) == ItemStatus.DRAFT)
    if n_flags != n_flags_before:
        Image.objects.filter(pk=image_id).update(n_flags=n_flags)
    return n_flags


def recheck_quality(*, batch_size: int = 500, on_batch=None) -> int:
    """Run the checks for every image with a live instruction not yet checked under CHECKS_VERSION (rows
    written before the checks existed or changed). Idempotent; returns how many images were checked."""
    stale = Instruction.objects.filter(status__in=LIVE).exclude(checked_quality=CHECKS_VERSION)
    return _check_images_of(stale, batch_size=batch_size, on_batch=on_batch)


def check_dataset_import(import_id: int, *, batch_size: int = 500) -> int:
    """Run the checks for the images of one dataset import's instructions, after its records are in (the
    import writes rows by COPY, past `check_image`). Idempotent; returns how many images were checked."""
    imported = Instruction.objects.filter(dataset_import_id=import_id)
    return _check_images_of(imported, batch_size=batch_size)


def _check_images_of(instructions, *, batch_size: int, on_batch=None) -> int:
    """check_image for each image of these instructions, in image id order, `batch_size` ids a query."""
    done = 0
    last = 0
    while True:
        image_ids = list(
            instructions.filter(image_id__gt=last)
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
