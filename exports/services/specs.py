"""Export specs and versions: creating a spec, allocating the next version and queueing its build; the
domain errors of the exports app (API_ERROR_STATUS in settings maps them: ExportError 409,
InvalidRequest 400).

A version's status moves through `corpus.transitions.transition` (ExportVersion.STATUS_MOVES): its
build in exports.services.build, its recovery in exports.services.recovery.
"""

import datetime
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from corpus.languages import Language
from corpus.models import Domain, ItemStatus
from corpus.rules import InstructionType, control_character_message, find_control_character
from corpus.transitions import record_event
from exports.models import (
    ConversationMode,
    ExportFormat,
    ExportSpec,
    ExportVersion,
    ImageMode,
    VersionStatus,
)


class ExportError(Exception):
    """A request the export service refuses because of the state of things, with a message for people."""


class InvalidRequest(ExportError):
    """Input the exports app cannot use. `errors` maps field → messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {m}" for k, msgs in errors.items() for m in msgs))


class InvalidSpec(InvalidRequest):
    """The selection or options of a spec are not usable."""


EXPORTABLE_STATUSES = (ItemStatus.ACCEPTED, ItemStatus.DRAFT, ItemStatus.REJECTED)
# The split seed is stored in a PostgreSQL integer: bounded here, so that a larger one is a clear 400,
# not a database error.
SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class Selection:
    """The parsed, checked selection of a spec. Empty tuples mean "all"."""

    domains: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = (ItemStatus.ACCEPTED.value,)
    models: tuple[str, ...] = ()
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    # The items' recorded language (corpus.languages); empty = any, including items of no known language.
    languages: tuple[str, ...] = ()

    def as_json(self) -> dict:
        out = {
            "domains": list(self.domains),
            "types": list(self.types),
            "statuses": list(self.statuses),
            "models": list(self.models),
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
        }
        if self.languages:  # only when chosen: specs made before languages existed read (and hash) the same
            out["languages"] = list(self.languages)
        return out


def _strings(value, field: str, errors: dict) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        errors.setdefault(field, []).append("must be a list of texts")
        return ()
    char = next(filter(None, map(find_control_character, value)), None)
    if char is not None:
        # A NUL cannot be stored in PostgreSQL's jsonb at all; no other control character names anything.
        errors.setdefault(field, []).append(control_character_message(field, char))
        return ()
    # Sorted and de-duplicated so that the same choice always reads (and hashes) the same.
    return tuple(sorted({v.strip() for v in value if v.strip()}))


def _date(value, field: str, errors: dict) -> datetime.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        errors.setdefault(field, []).append(f"'{value}' is not a date (YYYY-MM-DD)")
        return None


def parse_selection(raw: dict | None) -> Selection:
    """Check a selection dict; raise InvalidSpec naming each bad field."""
    raw = dict(raw or {})
    errors: dict[str, list[str]] = {}
    unknown = set(raw) - {"domains", "types", "statuses", "models", "date_from", "date_to", "languages"}
    if unknown:
        errors["selection"] = [f"unknown keys: {', '.join(sorted(unknown))}"]
    domains = _strings(raw.get("domains"), "domains", errors)
    types = _strings(raw.get("types"), "types", errors)
    statuses = _strings(raw.get("statuses"), "statuses", errors) or (ItemStatus.ACCEPTED.value,)
    models = _strings(raw.get("models"), "models", errors)
    date_from = _date(raw.get("date_from"), "date_from", errors)
    date_to = _date(raw.get("date_to"), "date_to", errors)
    languages = _strings(raw.get("languages"), "languages", errors)
    bad_languages = [x for x in languages if x not in Language.values]
    if bad_languages:
        errors.setdefault("languages", []).append(
            f"unknown language {', '.join(bad_languages)} (use {', '.join(Language.values)})"
        )
    if domains:
        known = set(Domain.objects.filter(slug__in=domains).values_list("slug", flat=True))
        missing = [d for d in domains if d not in known]
        if missing:
            errors.setdefault("domains", []).append(f"no such domain: {', '.join(missing)}")
    bad_types = [t for t in types if t not in InstructionType.values]
    if bad_types:
        errors.setdefault("types", []).append(
            f"not an instruction type: {', '.join(bad_types)} (use {', '.join(InstructionType.values)})"
        )
    bad_statuses = [s for s in statuses if s not in EXPORTABLE_STATUSES]
    if bad_statuses:
        errors.setdefault("statuses", []).append(
            f"cannot export status {', '.join(bad_statuses)} (use {', '.join(EXPORTABLE_STATUSES)}; "
            "invalid items are never exported)"
        )
    if date_from and date_to and date_from > date_to:
        errors.setdefault("date_to", []).append("must not be before date_from")
    if errors:
        raise InvalidSpec(errors)
    return Selection(domains, types, statuses, models, date_from, date_to, languages)


def create_spec(
    name: str,
    *,
    by,
    selection: dict | None = None,
    formats: list[str] | None = None,
    train_ratio: float = 0.95,
    seed: int = 0,
    image_mode: str = ImageMode.COPY,
    conversation_mode: str = ConversationMode.MULTI_TURN,
    description: str = "",
    include_captions: bool = False,
) -> ExportSpec:
    """Create a named export spec after checking every field. Not idempotent: a taken name → InvalidSpec."""
    errors: dict[str, list[str]] = {}
    slug = slugify(name or "")
    if not slug:
        errors["name"] = ["must contain letters or digits"]
    elif slug != name:
        errors["name"] = [f"use lowercase letters, digits and hyphens, e.g. '{slug}'"]
    formats = [ExportFormat.LLAVA] if formats is None else formats
    if not isinstance(formats, list | tuple) or not all(isinstance(f, str) for f in formats):
        errors["formats"] = [f"must be a list of formats ({', '.join(ExportFormat.values)})"]
        formats = []
    elif not formats:
        errors["formats"] = [f"choose at least one format ({', '.join(ExportFormat.values)})"]
    formats = sorted(set(formats))
    bad = [f for f in formats if f not in ExportFormat.values]
    if bad:
        errors["formats"] = [f"unknown format {', '.join(bad)} (use {', '.join(ExportFormat.values)})"]
    try:
        train_ratio = float(train_ratio)
    except (TypeError, ValueError):
        train_ratio = -1
    if not 0 <= train_ratio <= 1:
        errors["train_ratio"] = ["must be a number between 0 and 1"]
    if image_mode not in ImageMode.values:
        errors["image_mode"] = [f"use one of {', '.join(ImageMode.values)}"]
    if conversation_mode not in ConversationMode.values:
        errors["conversation_mode"] = [f"use one of {', '.join(ConversationMode.values)}"]
    if not isinstance(include_captions, bool):
        errors["include_captions"] = ["must be true or false"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        errors["seed"] = [f"must be a whole number from 0 to {SEED_MAX}"]
    try:
        parsed = parse_selection(selection)
    except InvalidSpec as exc:
        errors.update(exc.errors)
        parsed = None
    if errors:
        raise InvalidSpec(errors)
    try:
        with transaction.atomic():
            return ExportSpec.objects.create(
                name=slug,
                description=description,
                selection=parsed.as_json(),
                formats=formats,
                train_ratio=train_ratio,
                seed=seed,
                image_mode=image_mode,
                conversation_mode=conversation_mode,
                include_captions=include_captions,
                created_by=by,
            )
    except IntegrityError as exc:
        raise InvalidSpec({"name": [f"an export named '{slug}' exists already"]}) from exc


def allocate_version(spec: ExportSpec, *, by) -> ExportVersion:
    """Create the spec's next version (v1, v2, …) as queued. Safe under concurrency: the spec row is
    locked while the number is chosen, and the unique (spec, number) constraint backs it up (SQLite has
    no row locks; a lost race retries). Its first event comes from nothing."""
    for _ in range(5):
        try:
            with transaction.atomic():
                ExportSpec.objects.select_for_update().filter(pk=spec.pk).first()
                last = spec.versions.aggregate(n=Max("number"))["n"] or 0
                now = timezone.now()
                version = ExportVersion.objects.create(
                    spec=spec, number=last + 1, built_by=by, created_at=now, queued_at=now
                )
                record_event(version, from_status="", to_status=VersionStatus.QUEUED, actor=by, note="queued")
                return version
        except IntegrityError:
            continue
    raise ExportError("could not allocate a version number; try again")


def request_build(spec: ExportSpec, *, by) -> ExportVersion:
    """Allocate the next version and queue its build after commit. Each call makes a new version."""
    from exports.tasks import build_export_version

    with transaction.atomic():
        version = allocate_version(spec, by=by)
        build_export_version.delay_on_commit(version.pk)
    return version
