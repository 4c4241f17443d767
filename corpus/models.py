"""The data itself: domains and their seed questions, images, captions, instructions, revisions.

Writes that span rows live in corpus/services/items.py; the type rules in corpus/rules.py.
"""

from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Q, Subquery, Value
from django.db.models.functions import MD5, Cast, Coalesce, Concat
from django.utils import timezone

from .languages import Language
from .rules import InstructionType
from .transitions import StatusEvent


class DomainQuerySet(models.QuerySet):
    def with_counts(self):
        """Each domain with n_images, n_captions and n_<status> instruction counts, in one query
        (correlated subqueries, served by the image (domain, …) indexes and the instruction
        (image, status) index) rather than one query per domain."""

        def count(qs):
            subquery = qs.order_by().values("dummy").annotate(c=models.Count("*")).values("c")
            return Coalesce(Subquery(subquery, output_field=models.IntegerField()), 0)

        instructions = Instruction.objects.filter(image__domain=OuterRef("pk")).annotate(dummy=Value(1))
        annotations = {
            "n_images": count(Image.objects.filter(domain=OuterRef("pk")).annotate(dummy=Value(1))),
            "n_captions": count(
                Caption.objects.filter(image__domain=OuterRef("pk")).annotate(dummy=Value(1))
            ),
        }
        for status in ItemStatus.values:
            annotations[f"n_{status}"] = count(instructions.filter(status=status))
        return self.annotate(**annotations)


class Domain(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Annotation guidelines, in Markdown.")
    is_active = models.BooleanField(default=True)
    ocr_enabled = models.BooleanField(
        "OCR on",
        default=False,
        help_text="Text-heavy images (charts, documents, screenshots): the ocr stage may run on this "
        "domain's images, and their captions are written with the text it found.",
    )

    objects = DomainQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SeedQuestion(models.Model):
    """An example question of one type for one domain; the instruction prompts sample from these."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="seed_questions")
    type = models.CharField(max_length=20, choices=InstructionType.choices)
    question = models.TextField()
    options = models.JSONField(default=list, blank=True)
    answer = models.TextField(blank=True)

    class Meta:
        ordering = ["domain", "type", "id"]
        indexes = [
            # Serves the instruction prompt's "seed questions of this domain and type".
            models.Index(fields=["domain", "type"], name="seedq_domain_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.domain.slug}/{self.type}: {self.question[:60]}"


class ReviewStatus(models.TextChoices):
    NEW = "new", "No drafts yet"
    PENDING = "pending", "Drafts to review"
    IN_REVIEW = "in_review", "In review"
    REVIEWED = "reviewed", "Reviewed"


class ImageQuerySet(models.QuerySet):
    def with_domain(self):
        return self.select_related("domain")


def image_upload_to(instance, filename: str) -> str:
    ext = (instance.format or "bin").lower()
    return f"images/{instance.sha256[:2]}/{instance.sha256}.{ext}"


def thumbnail_upload_to(instance, filename: str) -> str:
    return f"thumbs/{instance.sha256[:2]}/{instance.sha256}.jpg"


class Image(models.Model):
    # The review state (review_status with its lease) moves only through corpus.transitions.transition() or
    # the statements of corpus/services/review_state.py, which check these moves and write one ImageEvent
    # each. new → pending: drafts arrive; pending → in_review: a claim or a take; in_review → pending: a
    # release with drafts left, or an expired lease; in_review → reviewed: the last draft decided (or a
    # lease that expires on a reopened image with nothing left); reviewed → in_review: a reopen;
    # reviewed → pending: new drafts (a regeneration).
    STATUS_MOVES = {
        "review_status": {
            ReviewStatus.NEW: frozenset({ReviewStatus.PENDING}),
            ReviewStatus.PENDING: frozenset({ReviewStatus.IN_REVIEW}),
            ReviewStatus.IN_REVIEW: frozenset({ReviewStatus.PENDING, ReviewStatus.REVIEWED}),
            ReviewStatus.REVIEWED: frozenset({ReviewStatus.IN_REVIEW, ReviewStatus.PENDING}),
        }
    }
    EVENT_MODEL = "corpus.ImageEvent"
    EVENT_FK = "image"

    file = models.ImageField(upload_to=image_upload_to, width_field="width", height_field="height")
    thumbnail = models.ImageField(upload_to=thumbnail_upload_to, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, unique=True)
    phash = models.CharField(
        max_length=16, blank=True, db_index=True, help_text="64-bit perceptual hash, hex."
    )
    near_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="near_duplicates"
    )
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    format = models.CharField(max_length=10, blank=True)
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="images")
    source = models.TextField(blank=True)
    license = models.TextField(blank=True)
    prior_knowledge = models.TextField(blank=True, help_text="A title or tags known before captioning.")
    ocr_text = models.TextField(blank=True)
    is_sample = models.BooleanField(default=False, help_text="Demo data, not real work.")
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    imported_at = models.DateTimeField(default=timezone.now)

    # The review state lives on the image: one lease covers the image with its caption and instructions.
    review_status = models.CharField(max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.NEW)
    leased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leased_images",
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Quality flags (corpus/checks.py) on the image's draft instructions, kept by corpus.services.quality
    # on every write of one of them: the queue's "most flags first" order reads it.
    n_flags = models.PositiveIntegerField(default=0, db_default=0)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # The review queue's next-item claim is served by review_claim_idx on (domain_id, (id + 0))
            # WHERE review_status = 'pending', made by review's migration 0002 (an expression index: the
            # claim orders by id + 0 so that no planner cost setting can choose a primary-key walk).
            # Serves the sweep of expired leases.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(review_status="in_review"),
                name="image_lease_expiry_idx",
            ),
            # Serves the image browser's filter by domain and review status.
            models.Index(fields=["domain", "review_status", "id"], name="image_browse_idx"),
            # Serves the "most flags first" claim: pending images of a domain, most flags first.
            models.Index(
                "domain",
                models.F("n_flags").desc(),
                "id",
                condition=Q(review_status="pending"),
                name="image_flagged_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.original_name or self.sha256[:12]


class ImageEvent(StatusEvent):
    """One move of an image's review state (claimed, released, finished, reopened, lease expired, new
    drafts): from, to, who, when, why."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        indexes = [
            # Serves an image's history and the lapsed-holder lookup of a renew (its last two events).
            models.Index(fields=["image", "at"], name="image_event_image_idx"),
            # Serves an annotator's "previous image" (their latest moves into in_review).
            models.Index(fields=["actor", "to_status", "at"], name="image_event_actor_idx"),
        ]


class ItemStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    INVALID = "invalid", "Invalid (broke the type rules)"


# The moves of a caption's or an instruction's status, checked by corpus.services.items (check_move). Their
# event is the Revision every change writes (who, when, before, after), so they have no event table.
# invalid is where model output that broke the rules starts; nothing moves an item into it.
ITEM_STATUS_MOVES = {
    ItemStatus.DRAFT: frozenset({ItemStatus.ACCEPTED, ItemStatus.REJECTED}),
    ItemStatus.ACCEPTED: frozenset({ItemStatus.REJECTED, ItemStatus.DRAFT}),
    ItemStatus.REJECTED: frozenset({ItemStatus.ACCEPTED, ItemStatus.DRAFT}),
    ItemStatus.INVALID: frozenset({ItemStatus.DRAFT, ItemStatus.REJECTED}),
}


class Origin(models.TextChoices):
    MODEL = "model", "Model"
    PERSON = "person", "Person"
    SAMPLE = "sample", "Sample data"
    IMPORTED = "imported", "Imported"


class ReviewedItem(models.Model):
    """What captions and instructions share: status, origin, provenance, version, review."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE)
    status = models.CharField(max_length=20, choices=ItemStatus.choices, default=ItemStatus.DRAFT)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MODEL)
    # Provenance of a model draft: which endpoint/model and prompt version, which generation unit.
    # generation_unit_id is a plain integer so corpus does not depend on the generation app.
    model_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    generation_unit_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # The language the item was written in: a model draft's comes from its prompt version; "" = unknown
    # (a person's, an import's). The language check reads it; an export spec may select by it.
    language = models.CharField(max_length=8, blank=True, default="", db_default="", choices=Language.choices)
    # Optimistic concurrency: every change bumps it; a save carries the version it loaded.
    version = models.PositiveIntegerField(default=1)
    reason = models.TextField(blank=True, help_text="Why it was rejected, or which rule it broke.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class Caption(ReviewedItem):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="captions")
    text = models.TextField()
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)

    EDITABLE_FIELDS = ("text",)
    STATUS_MOVES = {"status": ITEM_STATUS_MOVES}

    class Meta:
        ordering = ["image_id", "id"]
        indexes = [
            # Serves "the captions of an image" (review page, instruction stage's current caption).
            models.Index(fields=["image", "status"], name="caption_image_status_idx"),
        ]

    def __str__(self) -> str:
        return f"Caption {self.pk} of image {self.image_id}"

    def snapshot(self) -> dict:
        return {"text": self.text, "status": self.status, "reason": self.reason}


class Conversation(models.Model):
    """A multi-turn dialogue about one image. Its turns are Instructions (`conversation`, `turn` from 1):
    each is reviewed, revised and checked like any other instruction; the exports write the accepted
    turns of a dialogue as one multi-turn record. No status of its own: its turns carry theirs."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="conversations")
    caption = models.ForeignKey(
        Caption,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The caption the dialogue was generated from.",
    )
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MODEL)
    model_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    generation_unit_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["image_id", "id"]

    def __str__(self) -> str:
        return f"Conversation {self.pk} of image {self.image_id}"


class Instruction(ReviewedItem):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="instructions")
    caption = models.ForeignKey(
        Caption,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="instructions",
        help_text="The caption this instruction was generated from.",
    )
    # A turn of a multi-turn dialogue (both set), or a single instruction (both null). No index of its
    # own: the unique (conversation, turn) index serves the lookups and the cascade.
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="turns", db_index=False
    )
    turn = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1, 2, … within its dialogue.")
    type = models.CharField(max_length=20, choices=InstructionType.choices)
    question = models.TextField()
    options = models.JSONField(default=list, blank=True, help_text="MCQ options in order, without labels.")
    answer = models.TextField()
    # The rules' verdict, remembered: `content_digest` is computed by the database from the four fields
    # the rules read, on every write by anyone; corpus.services, having found the content valid, copies
    # it to `checked_digest` with the rules' version. While the two digests match and the version is
    # current, the content is the content that passed — the exports skip checking it again.
    content_digest = models.GeneratedField(
        expression=MD5(
            Concat(
                "type",
                Value("\x1f"),
                "question",
                Value("\x1f"),
                Cast("options", models.TextField()),
                Value("\x1f"),
                "answer",
                output_field=models.TextField(),
            )
        ),
        output_field=models.CharField(max_length=32),
        db_persist=True,
    )
    checked_digest = models.CharField(max_length=32, blank=True, db_default="", editable=False)
    checked_rules = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    # corpus.checks.question_key of the question (its content words, hashed), kept by
    # corpus.services.quality: the duplicate-in-domain check looks it up by index instead of scanning.
    question_key = models.CharField(max_length=32, blank=True, db_default="", editable=False)
    # The corpus.checks version whose findings the flags hold (None: never checked).
    checked_quality = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)

    # Provenance of an imported instruction: the import that brought it in (whose name is the source
    # dataset's) and the record's id in that dataset (its record number when it has none).
    dataset_import = models.ForeignKey(
        "DatasetImport", null=True, blank=True, on_delete=models.PROTECT, related_name="instructions"
    )
    # A database default as well: rows written by raw SQL that does not name the column (benchmarks, the
    # exports' test helpers) get "" rather than a NOT NULL violation.
    source_record = models.CharField(max_length=200, blank=True, db_default="")

    EDITABLE_FIELDS = ("type", "question", "options", "answer")
    STATUS_MOVES = {"status": ITEM_STATUS_MOVES}

    class Meta:
        ordering = ["image_id", "id"]
        indexes = [
            # Serves the instructions of an image (review page) and the export's accepted-by-image scan.
            models.Index(fields=["image", "status"], name="instruction_image_status_idx"),
            # Serves filters and statistics by type and status.
            models.Index(fields=["status", "type"], name="instruction_status_type_idx"),
            # Serves the duplicate-in-domain check: instructions with the same question key (a bounded
            # candidate set read by index, flat in the size of the domain).
            models.Index(
                fields=["question_key"], condition=~Q(question_key=""), name="instruction_question_key_idx"
            ),
        ]
        constraints = [
            # The unique index also serves "the turns of a dialogue, in order".
            models.UniqueConstraint(
                fields=["conversation", "turn"], name="instruction_conversation_turn_uniq"
            ),
            models.CheckConstraint(
                condition=Q(conversation__isnull=True, turn__isnull=True)
                | Q(conversation__isnull=False, turn__gte=1),
                name="instruction_turn_with_conversation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} {self.pk}: {self.question[:60]}"

    def snapshot(self) -> dict:
        return {
            "type": self.type,
            "question": self.question,
            "options": list(self.options or []),
            "answer": self.answer,
            "status": self.status,
            "reason": self.reason,
        }


class QualityFlag(models.Model):
    """One finding of an automatic check (corpus/checks.py) on an instruction: flags, never rejects.
    Re-written by corpus.services.quality whenever the instruction or its image's set changes."""

    # The unique (instruction, code) index serves an item's flags and the cascade: no second index.
    instruction = models.ForeignKey(
        Instruction, on_delete=models.CASCADE, related_name="flags", db_index=False
    )
    code = models.CharField(max_length=40)
    message = models.TextField()
    checks_version = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["instruction_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["instruction", "code"], name="quality_flag_item_code_uniq"),
        ]
        indexes = [
            # Serves the statistics page's counts by check.
            models.Index(fields=["code"], name="quality_flag_code_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code} on instruction {self.instruction_id}"


class VerdictValue(models.TextChoices):
    SUPPORTED = "supported", "Supported"
    UNSUPPORTED = "unsupported", "Unsupported"
    UNSURE = "unsure", "Unsure"


# The six hallucination categories, the same as review.models.HallucinationCategory (corpus imports no
# feature app; tests/quality/test_verify.py holds the two lists equal).
HALLUCINATION_CATEGORIES = [
    ("object", "Object"),
    ("attribute", "Attribute"),
    ("count", "Count"),
    ("text", "Text / OCR"),
    ("spatial", "Spatial relation"),
    ("other", "Other"),
]


class Verdict(models.Model):
    """What the verifier (generation's `verify` stage) said of one version of an instruction, with what
    asking cost. `generation_unit_id` is a plain integer (corpus does not depend on generation); one
    verdict per instruction and unit, so a redelivered unit never stores a second."""

    instruction = models.ForeignKey(
        Instruction, on_delete=models.CASCADE, related_name="verdicts", db_index=False
    )
    item_version = models.PositiveIntegerField(help_text="The version of the instruction that was judged.")
    verdict = models.CharField(max_length=20, choices=VerdictValue.choices)
    reason = models.TextField(blank=True)
    category = models.CharField(max_length=20, blank=True, choices=HALLUCINATION_CATEGORIES)
    endpoint_name = models.CharField(max_length=100, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    generation_unit_id = models.BigIntegerField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["instruction_id", "-id"]
        constraints = [
            # Also serves an item's verdicts (leading column) and the cascade: no second index.
            models.UniqueConstraint(
                fields=["instruction", "generation_unit_id"], name="verdict_instruction_unit_uniq"
            ),
            models.CheckConstraint(
                condition=Q(verdict="unsupported") | Q(category=""), name="verdict_category_only_unsupported"
            ),
        ]
        indexes = [
            # Serves the verifier report's scan by verdict.
            models.Index(fields=["verdict"], name="verdict_value_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} for instruction {self.instruction_id} v{self.item_version}"


class RevisionAction(models.TextChoices):
    CREATED = "created", "Created"
    EDITED = "edited", "Edited"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    REOPENED = "reopened", "Reopened"
    INVALIDATED = "invalidated", "Invalid"


class Revision(models.Model):
    """One change to a caption or an instruction: who, when, before and after. `version` is the item's
    version after the change, so (item, version) is unique and names exactly one state of the item."""

    caption = models.ForeignKey(
        Caption, null=True, blank=True, on_delete=models.CASCADE, related_name="revisions"
    )
    instruction = models.ForeignKey(
        Instruction, null=True, blank=True, on_delete=models.CASCADE, related_name="revisions"
    )
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=20, choices=RevisionAction.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(default=timezone.now)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField()
    note = models.TextField(blank=True)
    # Who decided, as a kind: "" a person (or the model's own creation), "auto" review by exception
    # (review/services/auto_accept.py, by its system user). The cost ledger and the verifier report read it.
    origin = models.CharField(max_length=10, blank=True, default="", db_default="")

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(caption__isnull=False) & Q(instruction__isnull=True))
                | (Q(caption__isnull=True) & Q(instruction__isnull=False)),
                name="revision_exactly_one_item",
            ),
            models.UniqueConstraint(fields=["caption", "version"], name="revision_caption_version_uniq"),
            models.UniqueConstraint(
                fields=["instruction", "version"], name="revision_instruction_version_uniq"
            ),
        ]

    def __str__(self) -> str:
        item = f"caption {self.caption_id}" if self.caption_id else f"instruction {self.instruction_id}"
        return f"{item} v{self.version} {self.action}"


class ImportBatchStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportBatch(models.Model):
    # queued → running: a worker starts it; running → running: a redelivered task starts it again (what is
    # already stored then counts as duplicates); → done | failed; queued/running → failed: the sweep ends
    # an abandoned batch. Every move goes through corpus.transitions.transition (one ImportBatchEvent).
    STATUS_MOVES = {
        "status": {
            ImportBatchStatus.QUEUED: frozenset({ImportBatchStatus.RUNNING, ImportBatchStatus.FAILED}),
            ImportBatchStatus.RUNNING: frozenset(
                {ImportBatchStatus.RUNNING, ImportBatchStatus.DONE, ImportBatchStatus.FAILED}
            ),
            ImportBatchStatus.DONE: frozenset(),
            ImportBatchStatus.FAILED: frozenset(),
        }
    }
    EVENT_MODEL = "corpus.ImportBatchEvent"
    EVENT_FK = "batch"

    """An upload too large to import inside the request: its files wait in a staging folder under
    IMPORT_STAGING_ROOT (outside MEDIA_ROOT: no URL reaches them) until a Celery worker imports them; the
    folder is removed when the batch ends. The summary is kept here for the page and the API."""

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="import_batches")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=10, choices=ImportBatchStatus.choices, default=ImportBatchStatus.QUEUED
    )
    source = models.TextField(blank=True)
    license = models.TextField(blank=True)
    prior_knowledge = models.TextField(blank=True)
    staging_dir = models.CharField(max_length=500, help_text="Relative to IMPORT_STAGING_ROOT.")
    n_files = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Last sign of life: staged, started, or a file imported (at most every few seconds). A queued or
    # running batch without one for IMPORT_ABANDONED_SECONDS is failed by the sweep (corpus.sweep).
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "import batches"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Import batch {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (ImportBatchStatus.DONE, ImportBatchStatus.FAILED)


class ImportBatchEvent(StatusEvent):
    """One status move of an import batch."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        indexes = [models.Index(fields=["batch", "at"], name="import_batch_event_idx")]


class DatasetFormat(models.TextChoices):
    LLAVA = "llava", "LLaVA JSON"
    SHAREGPT = "sharegpt", "ShareGPT / InternVL JSONL"
    PARQUET = "parquet", "Parquet with embedded images"


class DatasetImport(models.Model):
    """One existing instruction dataset brought in (corpus/services/dataset_import.py): from the command
    (read in place, run at once) or from the page and the API (staged under IMPORT_STAGING_ROOT and run
    by a worker). `records_done` is the checkpoint: records read and committed with `summary`, in the
    batch's own transaction, so a redelivered task resumes after them instead of importing them twice."""

    # The same moves as ImportBatch: queued → running (a worker starts it; running → running when a
    # redelivered task resumes it) → done | failed; the sweep fails an abandoned one.
    STATUS_MOVES = ImportBatch.STATUS_MOVES
    EVENT_MODEL = "corpus.DatasetImportEvent"
    EVENT_FK = "dataset_import"

    name = models.CharField(max_length=200, help_text="The source dataset's name.")
    format = models.CharField(max_length=10, choices=DatasetFormat.choices)
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="dataset_imports")
    # --status accepted: valid instructions come in accepted (what breaks the type rules stays a draft).
    as_accepted = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=10, choices=ImportBatchStatus.choices, default=ImportBatchStatus.QUEUED
    )
    # Staged files (page, API) live in staging_dir under IMPORT_STAGING_ROOT and data_file/images are
    # relative to it; a command's import reads the paths it was given (staging_dir empty).
    staging_dir = models.CharField(max_length=500, blank=True)
    data_file = models.CharField(max_length=1000)
    images = models.CharField(max_length=1000, blank=True, help_text="An image folder or .zip, if any.")
    records_done = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Last sign of life (a batch of records committed); the sweep fails an import silent for
    # IMPORT_ABANDONED_SECONDS.
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Dataset import {self.pk} {self.name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (ImportBatchStatus.DONE, ImportBatchStatus.FAILED)


class DatasetImportEvent(StatusEvent):
    """One status move of a dataset import."""

    dataset_import = models.ForeignKey(DatasetImport, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        indexes = [models.Index(fields=["dataset_import", "at"], name="dataset_import_event_idx")]
