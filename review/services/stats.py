"""What the corrections say: correction rates computed from Revisions, hallucination counts, annotator
throughput. Each figure is one aggregate query; the pivoting happens in Python on the grouped rows."""

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q
from django.db.models.fields.json import KT
from django.utils import timezone

from corpus.models import Caption, Instruction, ItemStatus, Origin, Revision, RevisionAction

from ..models import HallucinationCategory, HallucinationMark

CONTENT_FIELDS = {"caption": ("text",), "instruction": ("type", "question", "options", "answer")}


def _content_changed(kind: str) -> Exists:
    """A revision of the item whose before and after differ in content (not only in status)."""
    revisions = Revision.objects.filter(**{kind: OuterRef("pk")}, before__isnull=False)
    changed = Q()
    aliases = {}
    for name in CONTENT_FIELDS[kind]:
        aliases[f"b_{name}"] = KT(f"before__{name}")
        aliases[f"a_{name}"] = KT(f"after__{name}")
        changed |= ~Q(**{f"b_{name}": F(f"a_{name}")})
    return Exists(revisions.alias(**aliases).filter(changed))


def correction_rates() -> dict:
    """Of the model drafts people decided: the share edited (then accepted), rejected, and accepted
    as-is — overall and by kind, domain, instruction type and model."""
    rows = []
    for kind, model in (("caption", Caption), ("instruction", Instruction)):
        group = ["status", "was_edited", "model_name", "domain_name"] + (
            ["type"] if kind == "instruction" else []
        )
        qs = (
            model.objects.filter(origin=Origin.MODEL, status__in=[ItemStatus.ACCEPTED, ItemStatus.REJECTED])
            .annotate(was_edited=_content_changed(kind), domain_name=F("image__domain__name"))
            .values(*group)
            .annotate(n=Count("id"))
        )
        for row in qs:
            row["item_type"] = row.pop("type", "caption")
            row["domain"] = row.pop("domain_name")
            rows.append(row)

    def empty():
        return {"edited": 0, "rejected": 0, "as_is": 0, "total": 0}

    tables: dict[str, dict[str, dict]] = {
        k: defaultdict(empty) for k in ("overall", "domain", "type", "model")
    }
    for row in rows:
        outcome = (
            "rejected" if row["status"] == ItemStatus.REJECTED else "edited" if row["was_edited"] else "as_is"
        )
        for table, key in (
            ("overall", "all"),
            ("domain", row["domain"]),
            ("type", row["item_type"]),
            ("model", row["model_name"] or "(unknown)"),
        ):
            tables[table][key][outcome] += row["n"]
            tables[table][key]["total"] += row["n"]
    result = {}
    for table, groups in tables.items():
        result[table] = [
            {
                "key": key,
                **counts,
                **{
                    f"{o}_share": (counts[o] / counts["total"] if counts["total"] else 0.0)
                    for o in ("edited", "rejected", "as_is")
                },
            }
            for key, counts in sorted(groups.items())
        ]
    return result


def hallucination_counts() -> dict:
    """Marks by category × domain, × item type and × model: {"categories", "by_domain", …} where each
    table is a list of (key, {category: n}, total)."""
    rows = HallucinationMark.objects.values(
        "category", "item_type", "model_name", domain_name=F("domain__name")
    ).annotate(n=Count("id"))
    pivots: dict[str, dict[str, dict[str, int]]] = {"domain": {}, "type": {}, "model": {}}
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        totals[row["category"]] += row["n"]
        for table, key in (
            ("domain", row["domain_name"]),
            ("type", row["item_type"]),
            ("model", row["model_name"] or "(unknown)"),
        ):
            cell = pivots[table].setdefault(key, defaultdict(int))
            cell[row["category"]] += row["n"]
    categories = HallucinationCategory.choices
    out = {"categories": categories, "totals": [totals.get(c, 0) for c, _ in categories]}
    for table, groups in pivots.items():
        out[f"by_{table}"] = [
            {"key": key, "counts": [cells.get(c, 0) for c, _ in categories], "total": sum(cells.values())}
            for key, cells in sorted(groups.items())
        ]
    return out


_GAP_SQL = {
    # Seconds between consecutive decisions of one person; a gap above the idle limit is a break.
    "postgresql": "EXTRACT(EPOCH FROM (at - LAG(at) OVER (PARTITION BY by_id ORDER BY at)))",
    "sqlite": "(julianday(at) - julianday(LAG(at) OVER (PARTITION BY by_id ORDER BY at))) * 86400.0",
}


def throughput(*, days: int = 30) -> list[dict]:
    """Per annotator over the last `days`: decisions (accept/reject), active time (the sum of gaps
    between consecutive decisions up to REVIEW_IDLE_SECONDS; longer gaps are breaks), seconds per item
    and items per hour. One windowed aggregate query plus one for the names."""
    gap = _GAP_SQL["postgresql" if connection.vendor == "postgresql" else "sqlite"]
    sql = f"""
        SELECT by_id, COUNT(*), COALESCE(SUM(CASE WHEN gap <= %s THEN gap ELSE 0 END), 0)
        FROM (SELECT by_id, {gap} AS gap FROM {Revision._meta.db_table}
              WHERE by_id IS NOT NULL AND action IN (%s, %s) AND at >= %s) AS t
        GROUP BY by_id
    """
    since = timezone.now() - timedelta(days=days)
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [settings.REVIEW_IDLE_SECONDS, RevisionAction.ACCEPTED, RevisionAction.REJECTED, since]
        )
        rows = cursor.fetchall()
    names = dict(get_user_model().objects.filter(pk__in=[r[0] for r in rows]).values_list("pk", "username"))
    out = []
    for user_id, decisions, active in rows:
        active = float(active or 0)
        out.append(
            {
                "user": names.get(user_id, f"#{user_id}"),
                "decisions": decisions,
                "active_seconds": active,
                "seconds_per_item": active / decisions if decisions and active else None,
                "items_per_hour": decisions * 3600 / active if active else None,
            }
        )
    return sorted(out, key=lambda r: r["user"])
