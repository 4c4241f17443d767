"""The dataset card (README.md inside the archive): what was selected, how many items of each domain,
type and split, a text bar chart of the distribution, the files with their sha256, and how to load it.

Nothing time-dependent goes in here: the card is part of the hashed archive."""

from corpus.rules import InstructionType

_BAR = 40
_TYPE_LABELS = dict(InstructionType.choices)


def _bar(value: int, largest: int) -> str:
    if not largest:
        return ""
    eighths = round(value * _BAR * 8 / largest)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[rest]


def _chart(title: str, counts: dict[str, int], labels: dict[str, str] | None = None) -> list[str]:
    labels = labels or {}
    largest = max(counts.values(), default=0)
    total = sum(counts.values()) or 1
    width = max((len(labels.get(k, k)) for k in counts), default=0)
    lines = [f"{title}:", "", "```text"]
    for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        name = labels.get(key, key)
        lines.append(
            f"{name.ljust(width)}  {_bar(value, largest).ljust(_BAR + 1)} {value:>9,} ({value / total:.1%})"
        )
    lines.append("```")
    return lines


def _table(
    rows: dict[str, dict[str, int]], splits: list[str], first: str, labels: dict | None = None
) -> list[str]:
    labels = labels or {}
    head = f"| {first} | " + " | ".join(splits) + " | total |"
    out = [head, "|" + "---|" * (len(splits) + 2)]
    for key in sorted(rows):
        per = rows[key]
        cells = " | ".join(f"{per.get(s, 0):,}" for s in splits)
        out.append(f"| {labels.get(key, key)} | {cells} | {sum(per.values()):,} |")
    totals = " | ".join(f"{sum(r.get(s, 0) for r in rows.values()):,}" for s in splits)
    out.append(f"| **total** | {totals} | {sum(sum(r.values()) for r in rows.values()):,} |")
    return out


def render_card(head: dict) -> str:
    """The card's Markdown for a manifest head (manifest.json without its instruction list)."""
    counts = head["counts"]
    spec = head["spec"]
    splits = sorted(counts["by_split"])
    by_domain_split: dict[str, dict[str, int]] = {}
    by_type_split: dict[str, dict[str, int]] = {}
    for entry in counts["by_domain_type_split"]:
        domain, type_, split, n = entry["domain"], entry["type"], entry["split"], entry["instructions"]
        by_domain_split.setdefault(domain, {}).setdefault(split, 0)
        by_domain_split[domain][split] += n
        by_type_split.setdefault(type_, {}).setdefault(split, 0)
        by_type_split[type_][split] += n
    sel = spec["selection"]
    images = head["images"]
    lines = [
        f"# {head['name']}",
        "",
        head.get("description") or "A visual instruction dataset exported from MMInstruct Studio.",
        "",
        "## Summary",
        "",
        f"- Instructions: {counts['instructions']:,} in {counts['records']:,} records about "
        f"{counts['images']:,} images",
        f"- Splits (by image, seed {spec['seed']}, train ratio {spec['train_ratio']}): "
        + ", ".join(f"{s} {counts['by_split'][s]:,}" for s in splits),
        f"- Conversations: {'one multi-turn conversation per image' if spec['conversation_mode'] == 'multi_turn' else 'one record per instruction'}"
        "; each generated dialogue is one multi-turn record of its own",
        f"- Skipped because they break the type rules now: {counts['skipped_invalid']:,}",
        *(
            [f"- Detailed-description records (each image's accepted caption): {counts['captions']:,}"]
            if "captions" in counts
            else []
        ),
        *(
            [
                f"- What this data cost: {head['cost']['total']} {head['cost']['currency']} ("
                + ", ".join(
                    f"{d} {c} per instruction" for d, c in head["cost"]["per_accepted_by_domain"].items()
                )
                + "; model calls and people's active time)"
            ]
            if head.get("cost")
            else []
        ),
        f"- Selection: statuses {', '.join(sel['statuses'])}; domains {', '.join(sel['domains']) or 'all'}; "
        f"types {', '.join(sel['types']) or 'all'}; models {', '.join(sel['models']) or 'all'}; "
        f"created {sel['date_from'] or '…'} to {sel['date_to'] or '…'}",
        "",
        "## Distribution",
        "",
        *_chart("Instructions by domain", counts["by_domain"]),
        "",
        *_chart("Instructions by type", counts["by_type"], _TYPE_LABELS),
        "",
        "### By domain and split",
        "",
        *_table(by_domain_split, splits, "domain"),
        "",
        "### By type and split",
        "",
        *_table(by_type_split, splits, "type", _TYPE_LABELS),
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
        *(f"| `{name}` | {f['bytes']:,} | `{f['sha256']}` |" for name, f in sorted(head["files"].items())),
        "",
        "## Images",
        "",
    ]
    if images["mode"] == "copy":
        lines += [
            f"The {counts['images']:,} images are inside this archive under `images/<domain>/<sha256>.<ext>`; "
            "the `image` field of every record is that path, relative to the archive's root. Each file's name "
            "is the sha256 of its bytes (checked when the archive was built).",
        ]
    else:
        lines += [
            "Images are referenced, not copied: the `image` field is the path of the image inside the "
            "MMInstruct Studio media folder (`MEDIA_ROOT`), served over HTTP under `MEDIA_URL`. Point your "
            "loader's image folder at a copy of that media folder; `manifest.json` → `images` says the same.",
        ]
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "import json  # LLaVA: data/train.llava.json is one JSON array of {id, image, conversations}",
        "records = json.load(open('data/train.llava.json'))",
        "# ShareGPT / InternVL: data/train.sharegpt.jsonl, one record per line",
        "# Parquet (image bytes inside): datasets.load_dataset('parquet', data_files={'train': 'data/train.parquet'})",
        "```",
        "",
        "`manifest.json` lists the filter, the counts, the sha256 of every data file and, for every instruction, "
        "the revision (`version`) that went into this export.",
        "",
    ]
    return "\n".join(lines)
