"""What the review app adds to the corpus: the image state-change log, hallucination marks, second pass.

The review state itself (review_status, leased_by, lease_expires_at) lives on corpus.Image; every change
of it goes through review.services.transitions.transition(), which writes a ReviewEvent.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from corpus.models import Caption, Domain, Image, Instruction, Revision


class EventSubject(models.TextChoices):
    QUEUE = "queue", "Review queue"
    SECOND_PASS = "second_pass", "Second pass"


class ReviewEvent(models.Model):
    """One status change of an image's review state (or of its second pass): from, to, who, when, why."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="review_events")
    subject = models.CharField(max_length=20, choices=EventSubject.choices, default=EventSubject.QUEUE)
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            # Serves an image's history and the "previous image" lookup of an annotator.
            models.Index(fields=["image", "at"], name="review_event_image_idx"),
            models.Index(fields=["actor", "to_status", "at"], name="review_event_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"image {self.image_id}: {self.from_status} → {self.to_status}"


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
