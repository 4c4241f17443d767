"""What the review app adds to the corpus: hallucination marks and the second pass.

The review state itself (review_status, leased_by, lease_expires_at) lives on corpus.Image with its table
of moves and its event table (corpus.ImageEvent); corpus/services/review_state.py moves it. A second
pass's status moves through corpus.transitions.transition() with one SecondPassEvent per move.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from corpus.models import Caption, Domain, Image, Instruction, Revision
from corpus.transitions import StatusEvent


class HallucinationCategory(models.TextChoices):
    OBJECT = "object", "Object"
    ATTRIBUTE = "attribute", "Attribute"
    COUNT = "count", "Count"
    TEXT = "text", "Text / OCR"
    SPATIAL = "spatial", "Spatial relation"
    OTHER = "other", "Other"


class HallucinationMark(models.Model):
    """A hallucination an annotator found in a caption or an instruction, tied to the revision of the
    correction that recorded it. Domain, item type and model are copied from the item at marking time
    so that the statistics page groups one table instead of joining three (marks never change)."""

    caption = models.ForeignKey(
        Caption, null=True, blank=True, on_delete=models.CASCADE, related_name="hallucinations"
    )
    instruction = models.ForeignKey(
        Instruction, null=True, blank=True, on_delete=models.CASCADE, related_name="hallucinations"
    )
    revision = models.ForeignKey(
        Revision, null=True, blank=True, on_delete=models.SET_NULL, related_name="hallucinations"
    )
    category = models.CharField(max_length=20, choices=HallucinationCategory.choices)
    field = models.CharField(max_length=20, default="text", help_text="text, question, options or answer")
    span_start = models.PositiveIntegerField(null=True, blank=True)
    span_end = models.PositiveIntegerField(null=True, blank=True)
    span_text = models.TextField(blank=True)
    note = models.TextField(blank=True)
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="+")
    item_type = models.CharField(max_length=20, help_text="'caption' or the instruction type")
    model_name = models.CharField(max_length=200, blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(caption__isnull=False) & Q(instruction__isnull=True))
                | (Q(caption__isnull=True) & Q(instruction__isnull=False)),
                name="hallucination_exactly_one_item",
            ),
        ]
        indexes = [
            # Serves the statistics page's counts by category × domain / type / model.
            models.Index(fields=["category", "domain"], name="hallucination_stats_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_category_display()} in {self.item_type}"


class SecondPassStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a second reviewer"
    IN_REVIEW = "in_review", "In second review"
    DONE = "done", "Done"


class SecondPass(models.Model):
    """A reviewed image sampled for a second, independent look by someone other than its first reviewer."""

    # pending → in_review: a second reviewer claims it; in_review → pending: their lease expired;
    # in_review → done: their verdicts are in. Every move goes through corpus.transitions.transition().
    STATUS_MOVES = {
        "status": {
            SecondPassStatus.PENDING: frozenset({SecondPassStatus.IN_REVIEW}),
            SecondPassStatus.IN_REVIEW: frozenset({SecondPassStatus.PENDING, SecondPassStatus.DONE}),
            SecondPassStatus.DONE: frozenset(),
        }
    }
    EVENT_MODEL = "review.SecondPassEvent"
    EVENT_FK = "second_pass"

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="second_pass")
    first_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=20, choices=SecondPassStatus.choices, default=SecondPassStatus.PENDING
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "second passes"
        ordering = ["id"]
        indexes = [
            # Serves the second-pass claim: oldest pending first.
            models.Index(fields=["id"], condition=Q(status="pending"), name="second_pass_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"second pass of image {self.image_id} ({self.status})"


class SecondPassEvent(StatusEvent):
    """One status move of a second pass."""

    second_pass = models.ForeignKey(SecondPass, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        indexes = [models.Index(fields=["second_pass", "at"], name="second_pass_event_idx")]


class SecondVerdict(models.Model):
    """The second reviewer's opinion of one item the first reviewer decided."""

    second_pass = models.ForeignKey(SecondPass, on_delete=models.CASCADE, related_name="verdicts")
    caption = models.ForeignKey(Caption, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    instruction = models.ForeignKey(
        Instruction, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    item_version = models.PositiveIntegerField()
    first_status = models.CharField(max_length=20)
    second_status = models.CharField(max_length=20)
    agrees = models.BooleanField()
    note = models.TextField(blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(caption__isnull=False) & Q(instruction__isnull=True))
                | (Q(caption__isnull=True) & Q(instruction__isnull=False)),
                name="verdict_exactly_one_item",
            ),
        ]
        indexes = [models.Index(fields=["agrees", "at"], name="verdict_agrees_idx")]

    def __str__(self) -> str:
        item = f"caption {self.caption_id}" if self.caption_id else f"instruction {self.instruction_id}"
        return f"{item}: {'agrees' if self.agrees else 'disagrees'}"


class AutoAcceptStatus(models.TextChoices):
    OFF = "off", "Off"
    ON = "on", "On"


class AutoAcceptPolicy(models.Model):
    """Review by exception for one domain (opt-in): while on, draft instructions that pass every check
    and that the verifier calls supported are accepted without a person, except an audit share.
    review/services/auto_accept.py switches it on (only when the verifier's measured precision and recall
    are above the floors) and off (a person, or itself when a later audit falls below them)."""

    # off → on: an admin, when the floors are met; on → off: an admin, or the audit check itself.
    STATUS_MOVES = {
        "status": {
            AutoAcceptStatus.OFF: frozenset({AutoAcceptStatus.ON}),
            AutoAcceptStatus.ON: frozenset({AutoAcceptStatus.OFF}),
        }
    }
    EVENT_MODEL = "review.AutoAcceptEvent"
    EVENT_FK = "policy"

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="auto_accept")
    status = models.CharField(max_length=10, choices=AutoAcceptStatus.choices, default=AutoAcceptStatus.OFF)
    # When it was last switched on: the audit that may switch it off counts decisions from here.
    since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain_id"]

    def __str__(self) -> str:
        return f"auto-accept {self.status} for domain {self.domain_id}"


class AutoAcceptEvent(StatusEvent):
    """One switch of a domain's auto-accept, with why (the figures the decision read)."""

    policy = models.ForeignKey(AutoAcceptPolicy, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        pass
