"""Export specs (what to select and how to write it) and their immutable, numbered versions.

Writes live in exports/services/, reads that pages and the API share in exports/selectors.py; the
status of a version moves only through `corpus.transitions.transition` (the table of moves beside the
field, compare-and-swap, one ExportVersionEvent per move).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from corpus.transitions import StatusEvent


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
    # Each exported image's accepted caption as one detailed-description record too (in every format).
    include_captions = models.BooleanField(default=False, db_default=False)
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
    """One build of a spec. Once `done` it is never rewritten: the table of moves holds none out of done,
    and a database trigger (migration 0002) rejects any UPDATE of a done row's status or content."""

    # queued → building: a worker starts the next attempt (exports.services.build).
    # queued → queued: the sweep sends the build task again for a version no worker took within
    #   EXPORTS_QUEUED_TIMEOUT (its message was lost: a crash before the worker took it).
    # building → queued | failed: the sweep restarts (or, after EXPORTS_BUILD_MAX_ATTEMPTS, fails) a build
    #   whose heartbeat went silent (exports.services.recovery); guarded by the attempt and the stale beat.
    # building → done | failed: the attempt that still holds the row publishes it or records why not.
    # done and failed are final.
    STATUS_MOVES = {
        "status": {
            VersionStatus.QUEUED: frozenset({VersionStatus.QUEUED, VersionStatus.BUILDING}),
            VersionStatus.BUILDING: frozenset(
                {VersionStatus.QUEUED, VersionStatus.DONE, VersionStatus.FAILED}
            ),
            VersionStatus.DONE: frozenset(),
            VersionStatus.FAILED: frozenset(),
        }
    }
    EVENT_MODEL = "exports.ExportVersionEvent"
    EVENT_FK = "version"

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
    # When it was last queued (allocated, restarted, or its task sent again; empty: at created_at): a
    # version still queued EXPORTS_QUEUED_TIMEOUT later lost its task message, and the sweep sends it
    # again. Nullable without a default, so that adding it did not rebuild the table on SQLite (which
    # would drop the done-row trigger). No index: the sweep reads the few queued rows of a small table.
    queued_at = models.DateTimeField(null=True, blank=True)
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


class ExportVersionEvent(StatusEvent):
    """One status move of a version: from, to, who, when, note (the first one, at allocation, from
    nothing)."""

    version = models.ForeignKey(ExportVersion, on_delete=models.CASCADE, related_name="events")

    def __str__(self) -> str:
        return f"{self.version} {super().__str__()}"
