"""One state machine for every status field in the house.

A model with a status field lists its allowed moves in one table beside the field
(`STATUS_MOVES = {"status": {from: {to, …}, …}}`) and names its own event model (`EVENT_MODEL`, a
concrete subclass of `StatusEvent` with a foreign key `EVENT_FK` to it). `transition()` is the one
function that moves a row: it refuses a move the table does not hold, compare-and-swaps the row from the
status the caller saw (plus any `expect`ed columns: a lease holder, a claim token), sets `fields` in the
same UPDATE, and writes exactly one event row in the same transaction. Losing a race returns False; it
never overwrites. A statement that must move rows in bulk in raw SQL (the review claim) checks its move
with `check_move()` and writes the same event rows itself. `claim_first()` is the one loop that claims
the first row of a queue by compare-and-swap (the review queue on SQLite, the second pass).

Not django-fsm (a decorator per move, state kept in Python) and not one generic event table (every
subject keeps its own, with a real foreign key and its own indexes).
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone


class InvalidTransition(Exception):
    """A status move that the model's table of allowed moves does not hold (the API answers 400 naming
    the `status` field: API_ERROR_STATUS)."""

    field = "status"


class StatusEvent(models.Model):
    """What every event row holds: one move of one subject's status — from, to, who, when, why.

    Concrete subclasses add the foreign key to their subject (named by the subject's EVENT_FK)."""

    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


def moves_of(model, field: str) -> dict[str, frozenset[str]]:
    """The table of allowed moves of `model.field`."""
    try:
        return model.STATUS_MOVES[field]
    except (AttributeError, KeyError):
        raise InvalidTransition(f"{model.__name__}.{field} has no table of allowed moves") from None


def check_move(model, field: str, from_status: str, to_status: str) -> None:
    """Raise InvalidTransition unless the table of `model.field` allows from_status → to_status."""
    if to_status not in moves_of(model, field).get(from_status, ()):
        raise InvalidTransition(
            f"{model._meta.verbose_name} {field} cannot move from {from_status or 'nothing'} to {to_status}"
        )


def event_model(model) -> type[StatusEvent]:
    """The concrete event model of a subject model (EVENT_MODEL, "app_label.ModelName")."""
    return apps.get_model(model.EVENT_MODEL)


def record_event(
    obj, *, from_status: str, to_status: str, actor=None, note: str = "", at=None
) -> StatusEvent:
    """Write one event row for `obj` (the first event of a new row, whose status nobody moved yet)."""
    model = type(obj)
    return event_model(model).objects.create(
        **{model.EVENT_FK: obj},
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        at=at or timezone.now(),
        note=note,
    )


def transition(
    obj,
    field: str,
    to: str,
    *,
    expect: dict | Q | None = None,
    actor=None,
    note: str = "",
    fields: dict | None = None,
) -> bool:
    """Move `obj.field` from the status the caller saw (its value on `obj`) to `to`: compare-and-swap,
    with `expect`ed column values as further conditions and `fields` set in the same UPDATE, and one
    event row in the same transaction. Returns False when the row was not in that state any more (a lost
    race); raises InvalidTransition for a move the table does not allow. On success `obj` carries the new
    status and fields. `expect` is a dict of column values or a Q. `obj` may be a bare instance (`Image(pk=…, review_status=…)`) when only the id is
    at hand."""
    model = type(obj)
    current = getattr(obj, field)
    check_move(model, field, current, to)
    updates = {field: to, **(fields or {})}
    now = timezone.now()
    # No savepoint when nested: a lost race returns before writing anything, and an error inside rolls the
    # caller's transaction back anyway — so the savepoint would only cost two statements per move.
    with transaction.atomic(savepoint=False):
        rows = model._base_manager.filter(pk=obj.pk, **{field: current})
        rows = rows.filter(expect) if isinstance(expect, Q) else rows.filter(**(expect or {}))
        swapped = rows.update(**updates)
        if swapped != 1:
            return False
        record_event(obj, from_status=current, to_status=to, actor=actor, note=note, at=now)
    for name, value in updates.items():
        setattr(obj, name, value)
    return True


def claim_first(
    queryset,
    field: str,
    to: str,
    *,
    actor=None,
    note: str = "",
    fields: dict | None = None,
    expect: dict | Q | None = None,
    attempts: int = 20,
) -> int | None:
    """The portable claim loop: move the row of `queryset` with the smallest id from its status (as read)
    to `to` with transition(); when another claimer wins that row first, try the next one. Returns the
    id claimed, or None when the queryset is empty (or every attempt lost a race). Not idempotent: each
    call claims another row. The review queue (on SQLite) and the second pass share it."""
    model = queryset.model
    for _ in range(attempts):
        candidate = queryset.order_by("id").values_list("id", field).first()
        if candidate is None:
            return None
        row = model(pk=candidate[0], **{field: candidate[1]})
        if transition(row, field, to, expect=expect, actor=actor, note=note, fields=fields):
            return candidate[0]
    return None
