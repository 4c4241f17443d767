"""The cost of an accepted instruction, from a ledger of what was spent:

- model calls: every unit's and every failed attempt's recorded cost (generation.selectors.model_spend),
  by domain, stage, instruction type, endpoint and week;
- people's time: each decision's active time — the gap since the same person's previous decision, up to
  REVIEW_IDLE_SECONDS (longer gaps are breaks), as on the statistics page — at the hourly rate of the
  person's role (COST_HOURLY_RATE_*), by the decided item's domain and type and the week.

Cost per accepted instruction = the ledger's total / the accepted instructions (overall, by domain, by
week; by type for what can be told apart per type — caption and verification calls are shared by the
image's instructions and shown on their own line). Beside it the manual baseline: the measured time
people take to write an instruction by hand (the gap before each instruction they added with "add a
missing instruction", up to COST_MANUAL_MAX_SECONDS) or COST_MANUAL_SECONDS when set, at the annotator
rate; the ratio of the two is the headline (MMInstruct's claim: 1/6).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncWeek

from accounts.roles import ADMIN, ANNOTATOR, RESEARCHER
from corpus.models import Caption, Image, Instruction, ItemStatus, Origin, Revision, RevisionAction
from generation import selectors as generation_selectors

from .verifier_report import SYSTEM_USERNAME

CENT = Decimal("0.0001")
SHARED = "(captions and verification)"

_GAP = {
    "postgresql": "EXTRACT(EPOCH FROM (r.at - LAG(r.at) OVER (PARTITION BY r.by_id ORDER BY r.at, r.id)))",
    "sqlite": "(julianday(r.at) - julianday(LAG(r.at) OVER (PARTITION BY r.by_id ORDER BY r.at, r.id))) * 86400.0",
}
_WEEK = {
    "postgresql": "date_trunc('week', {col})::date",
    "sqlite": "date({col}, 'weekday 0', '-6 days')",
}


def hourly_rate(roles: set[str]) -> Decimal:
    """The rate of a person: the annotator rate if they annotate, else admin's, else researcher's."""
    if ANNOTATOR in roles:
        return Decimal(str(settings.COST_HOURLY_RATE_ANNOTATOR))
    if ADMIN in roles:
        return Decimal(str(settings.COST_HOURLY_RATE_ADMIN))
    if RESEARCHER in roles:
        return Decimal(str(settings.COST_HOURLY_RATE_RESEARCHER))
    return Decimal(str(settings.COST_HOURLY_RATE_ANNOTATOR))


def _roles_of(user_ids) -> dict[int, set[str]]:
    roles: dict[int, set[str]] = defaultdict(set)
    User = get_user_model()
    for pk, group, superuser in User.objects.filter(pk__in=list(user_ids)).values_list(
        "pk", "groups__name", "is_superuser"
    ):
        if group:
            roles[pk].add(group)
        if superuser:
            roles[pk].add(ADMIN)
    return roles


def _week(col: str) -> str:
    return _WEEK["postgresql" if connection.vendor == "postgresql" else "sqlite"].format(col=col)


def people_time() -> list[tuple]:
    """(user id, domain id, type, week, active seconds, is a hand-written instruction's creation) per
    group of decisions: every person's revisions (not the auto-accept system user's) with the gap since
    their previous one, up to the idle limit. One windowed query."""
    vendor = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    rev, ins, cap, img = (m._meta.db_table for m in (Revision, Instruction, Caption, Image))
    user_table = get_user_model()._meta.db_table
    sql = f"""
        SELECT t.by_id, im.domain_id, COALESCE(i.type, 'caption'), {_week("t.at")},
               SUM(CASE WHEN t.gap <= %s THEN t.gap ELSE 0 END),
               SUM(CASE WHEN t.manual AND t.gap <= %s THEN t.gap ELSE 0 END),
               SUM(CASE WHEN t.manual AND t.gap IS NOT NULL AND t.gap <= %s THEN 1 ELSE 0 END)
        FROM (SELECT r.by_id, r.at, r.instruction_id, r.caption_id, {_GAP[vendor]} AS gap,
                     (r.action = %s AND r.version = 1 AND ii.origin = %s) AS manual
              FROM {rev} r LEFT JOIN {ins} ii ON ii.id = r.instruction_id
              JOIN {user_table} u ON u.id = r.by_id
              WHERE r.by_id IS NOT NULL AND u.username <> %s) AS t
        LEFT JOIN {ins} i ON i.id = t.instruction_id
        LEFT JOIN {cap} c ON c.id = t.caption_id
        JOIN {img} im ON im.id = COALESCE(i.image_id, c.image_id)
        GROUP BY t.by_id, im.domain_id, COALESCE(i.type, 'caption'), {_week("t.at")}
    """
    idle, manual_max = settings.REVIEW_IDLE_SECONDS, settings.COST_MANUAL_MAX_SECONDS
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [idle, manual_max, manual_max, RevisionAction.CREATED, Origin.PERSON, SYSTEM_USERNAME]
        )
        return cursor.fetchall()


def _money(x) -> Decimal:
    return Decimal(x).quantize(CENT, rounding=ROUND_HALF_UP)


def ledger() -> dict:
    """The cost of an accepted instruction with its inputs: {"overall": {...}, "by_domain", "by_type",
    "by_week", "by_model", "manual": {...}, "ratio"}; every figure is a sum of ledger lines."""
    from corpus.models import Domain

    domains = dict(Domain.objects.values_list("pk", "name"))
    model = defaultdict(Decimal)  # (table, key) → cost
    people = defaultdict(Decimal)
    seconds = defaultdict(float)
    totals = {"model": Decimal(0), "people": Decimal(0), "seconds": 0.0}
    for row in generation_selectors.model_spend():
        cost = Decimal(row["cost"] or 0)
        week = row["week"].date().isoformat() if hasattr(row["week"], "date") else str(row["week"])
        type_ = row["instruction_type"] if row["stage"] == "instructions" else SHARED
        totals["model"] += cost
        model[("domain", domains.get(row["domain_id"], "?"))] += cost
        model[("type", type_)] += cost
        model[("week", week)] += cost
        model[("model", row["endpoint_name"])] += cost
    rows = people_time()
    roles = _roles_of({r[0] for r in rows})
    manual_seconds, manual_count = 0.0, 0
    for user_id, domain_id, type_, week, active, manual, n_manual in rows:
        active = float(active or 0)
        cost = Decimal(str(active)) * hourly_rate(roles.get(user_id, set())) / 3600
        week = week.isoformat() if hasattr(week, "isoformat") else str(week)
        totals["people"] += cost
        totals["seconds"] += active
        for key in (("domain", domains.get(domain_id, "?")), ("type", type_), ("week", week)):
            people[key] += cost
            seconds[key] += active
        manual_seconds += float(manual or 0)
        manual_count += int(n_manual or 0)

    accepted = defaultdict(int)
    acc = Instruction.objects.filter(status=ItemStatus.ACCEPTED)
    grouped = acc.values_list("image__domain__name", "type", "model_name").annotate(n=Count("id")).order_by()
    for domain_name, type_, model_name, n in grouped:
        accepted[("domain", domain_name)] += n
        accepted[("type", type_)] += n
        accepted[("model", (model_name or "").split("/")[0] or "(people)")] += n
    for week, n in (
        acc.annotate(week=TruncWeek("reviewed_at")).values_list("week").annotate(n=Count("id")).order_by()
    ):
        if week is not None:
            accepted[("week", week.date().isoformat() if hasattr(week, "date") else str(week))] += n
    n_accepted = sum(n for (table, _key), n in accepted.items() if table == "domain")

    def line(table: str, key: str) -> dict:
        m, p, n = model[(table, key)], people[(table, key)], accepted[(table, key)]
        return {
            "key": key,
            "model_cost": _money(m),
            "people_cost": _money(p),
            "people_seconds": round(seconds[(table, key)], 1),
            "total": _money(m + p),
            "accepted": n,
            "per_accepted": _money((m + p) / n) if n else None,
        }

    out = {}
    for table in ("domain", "type", "week", "model"):
        keys = sorted({k for t, k in list(model) + list(people) + list(accepted) if t == table})
        out[f"by_{table}"] = [line(table, k) for k in keys]
    total = totals["model"] + totals["people"]
    per_accepted = total / n_accepted if n_accepted else None
    rate = Decimal(str(settings.COST_HOURLY_RATE_ANNOTATOR))
    if settings.COST_MANUAL_SECONDS:
        manual_each, source = float(settings.COST_MANUAL_SECONDS), "configured (COST_MANUAL_SECONDS)"
    elif manual_count:
        manual_each, source = (
            manual_seconds / manual_count,
            f"measured on {manual_count} instructions written by hand",
        )
    else:
        manual_each, source = None, "no instruction written by hand yet, and COST_MANUAL_SECONDS is not set"
    manual_cost = Decimal(str(manual_each)) * rate / 3600 if manual_each is not None else None
    out["overall"] = {
        "model_cost": _money(totals["model"]),
        "people_cost": _money(totals["people"]),
        "people_seconds": round(totals["seconds"], 1),
        "total": _money(total),
        "accepted": n_accepted,
        "per_accepted": _money(per_accepted) if per_accepted is not None else None,
        "currency": settings.COST_CURRENCY,
    }
    out["manual"] = {
        "seconds_per_instruction": round(manual_each, 1) if manual_each is not None else None,
        "hourly_rate": rate,
        "per_instruction": _money(manual_cost) if manual_cost is not None else None,
        "source": source,
    }
    out["ratio"] = float(per_accepted / manual_cost) if per_accepted is not None and manual_cost else None
    return out


def cost_per_accepted_by_domain() -> dict[str, Decimal]:
    """Domain slug → cost per accepted instruction (for the dataset card of an export)."""
    from corpus.models import Domain

    names = dict(Domain.objects.values_list("name", "slug"))
    return {
        names[row["key"]]: row["per_accepted"]
        for row in ledger()["by_domain"]
        if row["per_accepted"] is not None and row["key"] in names
    }
