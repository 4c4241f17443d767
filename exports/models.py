"""Export specs (what to select and how to write it) and their immutable, numbered versions.

Writes live in exports/services/; the status of a version moves only through
`exports.services.specs.transition` (one table of allowed moves, compare-and-swap, an event row).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ExportFormat(models.TextChoices):
    LLAVA = "llava", "LLaVA JSON"
    SHAREGPT = "sharegpt", "ShareGPT / InternVL JSONL"
    PARQUET = "parquet", "Parquet (with image bytes)"


class ImageMode(models.TextChoices):
    COPY = "copy", "Copy images into the archive"
    REFERENCE = "reference", "Reference images by path"


class ConversationMode(models.TextChoices):
    MULTI_TURN = "multi_turn", "One multi-turn conversation per image"
    PER_INSTRUCTION = "per_instruction", "One record per instruction"


class ExportSpec(models.Model):
    """A named selection of the corpus and how to write it. Each build makes the next ExportVersion.

    `selection` holds: domains (slugs), types, statuses (default ["accepted"]), models (model_name),
    date_from / date_to (ISO dates, on Instruction.created_at, inclusive). Empty lists mean "all"."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    selection = models.JSONField(default=dict, blank=True)
    # Fraction of images that go to the train split; the rest is validation. 1.0 = no validation split.
    train_ratio = models.FloatField(default=0.95)
    seed = models.PositiveIntegerField(default=0)
    formats = models.JSONField(default=list)
    image_mode = models.CharField(max_length=20, choices=ImageMode.choices, default=ImageMode.COPY)
    conversation_mode = models.CharField(
        max_length=20, choices=ConversationMode.choices, default=ConversationMode.MULTI_TURN
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(train_ratio__gte=0) & Q(train_ratio__lte=1), name="exportspec_train_ratio_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    BUILDING = "building", "Building"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportVersion(models.Model):
    """One build of a spec. Once `done` it is never rewritten: the service refuses and a database
    trigger (migration 0002) rejects any UPDATE of a done row."""

    spec = models.ForeignKey(ExportSpec, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=VersionStatus.choices, default=VersionStatus.QUEUED)
    # Each (re)start of a build takes the next attempt; only the attempt that holds the version's row
    # may finish it, so a redelivered task and a slow first worker never both publish a file.
    attempt = models.PositiveIntegerField(default=0)
    file_path = models.CharField(max_length=500, blank=True, help_text="Relative to EXPORTS_ROOT.")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True, help_text="manifest.json without the item list.")
    error = models.TextField(blank=True)
    built_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # While building, the worker's heartbeat thread moves this every EXPORTS_HEARTBEAT_SECONDS; a build
    # silent for EXPORTS_HEARTBEAT_TIMEOUT lost its worker, and the sweep restarts or fails it.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["spec_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["spec", "number"], name="exportversion_spec_number_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.spec.name} v{self.number}"

    @property
    def label(self) -> str:
        return f"v{self.number}"

    @property
    def is_done(self) -> bool:
        return self.status == VersionStatus.DONE


class ExportVersionEvent(models.Model):
    """A status move of a version: from, to, who, when, note."""

    version = models.ForeignKey(ExportVersion, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, choices=VersionStatus.choices)
    to_status = models.CharField(max_length=20, choices=VersionStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.version} {self.from_status}→{self.to_status}"
