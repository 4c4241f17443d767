"""Model endpoints, versioned prompt templates, generation jobs and their units of work.

A GenerationUnit (image × stage × instruction type × prompt version × endpoint × round) is the grain of
idempotency, retries, cost and progress; a job's counts, tokens and cost are sums over its units.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from corpus.languages import DEFAULT_LANGUAGE, Language
from corpus.models import Domain, Image
from corpus.rules import InstructionType
from corpus.transitions import StatusEvent

from .validators import (
    refuse_control_characters,
    refuse_control_characters_single_line,
    validate_api_key_env,
    validate_base_url,
)


class EndpointKind(models.TextChoices):
    VISION = "vision", "Vision (captions)"
    TEXT = "text", "Text (instructions)"


class Endpoint(models.Model):
    """A configured model behind an OpenAI-compatible API. The key stays in the environment."""

    name = models.CharField(max_length=100, unique=True, validators=[refuse_control_characters_single_line])
    kind = models.CharField(max_length=10, choices=EndpointKind.choices)
    base_url = models.URLField(
        max_length=500,
        validators=[refuse_control_characters_single_line, validate_base_url],
        help_text="http(s) only; link-local and metadata addresses are refused, private ones unless allowed.",
    )
    api_key_env = models.CharField(
        max_length=100,
        default="OPENAI_API_KEY",
        validators=[refuse_control_characters_single_line, validate_api_key_env],
        help_text="Name of the environment variable that holds the API key (never the key itself); it must "
        "match GENERATION_API_KEY_ENV_PATTERN (by default: end in _API_KEY).",
    )
    model = models.CharField(
        max_length=200,
        help_text="Model id sent to the API.",
        validators=[refuse_control_characters_single_line],
    )
    price_in_per_m = models.DecimalField(
        max_digits=10, decimal_places=4, default=0, validators=[MinValueValidator(0)]
    )
    price_out_per_m = models.DecimalField(
        max_digits=10, decimal_places=4, default=0, validators=[MinValueValidator(0)]
    )
    rpm_limit = models.PositiveIntegerField(
        default=500,
        help_text="Requests per minute; 0 = no limit.",
        validators=[MaxValueValidator(10_000_000)],
    )
    tpm_limit = models.PositiveIntegerField(
        default=0, help_text="Tokens per minute; 0 = no limit.", validators=[MaxValueValidator(2_000_000_000)]
    )
    max_concurrency = models.PositiveIntegerField(
        default=16,
        help_text="Calls in flight per worker task (1–256).",
        validators=[MinValueValidator(1), MaxValueValidator(256)],
    )
    timeout = models.FloatField(
        default=120.0,
        help_text="Seconds per call (0.1–3600).",
        validators=[MinValueValidator(0.1), MaxValueValidator(3600)],
    )
    supports_json_schema = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="The default endpoint of its kind.")
    created_at = models.DateTimeField(default=timezone.now)
    # The last "Test connection" (one cheap call): a launch on an endpoint whose last test failed asks for
    # confirmation. Cleared when the URL, model or key variable changes (the old result no longer applies).
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status.")
    last_test_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_test_error = models.TextField(blank=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=Q(is_default=True), name="endpoint_one_default"
            ),
            models.CheckConstraint(condition=Q(max_concurrency__gte=1), name="endpoint_concurrency_positive"),
            models.CheckConstraint(condition=Q(timeout__gt=0), name="endpoint_timeout_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"


class PromptKind(models.TextChoices):
    CAPTION = "caption", "Caption"
    INSTRUCTION = "instruction", "Instruction"
    CONVERSATION = "conversation", "Conversation"
    VERIFY = "verify", "Verification"


class PromptTemplate(models.Model):
    """One version of a prompt. Editing makes a new row with version + 1 and moves `is_current` to it.

    Key: (kind, domain or none, instruction_type); caption templates have instruction_type "" and the
    domain-less one is the default; instruction templates are per type (domain optional)."""

    kind = models.CharField(max_length=20, choices=PromptKind.choices)
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    instruction_type = models.CharField(max_length=20, blank=True, choices=InstructionType.choices)
    version = models.PositiveIntegerField()
    text = models.TextField(validators=[refuse_control_characters])
    note = models.CharField(max_length=200, blank=True, validators=[refuse_control_characters_single_line])
    # The language the prompt asks the model to write in; the drafts it makes record it.
    language = models.CharField(max_length=8, choices=Language.choices, default=DEFAULT_LANGUAGE)
    is_current = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "instruction_type", "domain_id", "-version"]
        # Partial unique constraints because NULL domains are distinct in a plain unique index.
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "instruction_type", "version"],
                condition=Q(domain__isnull=True),
                name="prompt_default_version_uniq",
            ),
            models.UniqueConstraint(
                fields=["kind", "domain", "instruction_type", "version"],
                condition=Q(domain__isnull=False),
                name="prompt_domain_version_uniq",
            ),
            models.UniqueConstraint(
                fields=["kind", "instruction_type"],
                condition=Q(domain__isnull=True, is_current=True),
                name="prompt_default_one_current",
            ),
            models.UniqueConstraint(
                fields=["kind", "domain", "instruction_type"],
                condition=Q(domain__isnull=False, is_current=True),
                name="prompt_domain_one_current",
            ),
        ]

    def __str__(self) -> str:
        scope = self.domain.slug if self.domain_id else "default"
        what = self.instruction_type or self.kind
        return f"{what} prompt ({scope}) v{self.version}"


class Stage(models.TextChoices):
    CAPTIONS = "captions", "Captions"
    INSTRUCTIONS = "instructions", "Instructions"
    CONVERSATION = "conversation", "Conversations"
    OCR = "ocr", "OCR"
    VERIFY = "verify", "Verify"  # generation/services/verify.py


# What one unit of each stage writes, as the job page names it (an instruction unit shows its type).
UNIT_OUTPUT = {
    Stage.CAPTIONS: "caption",
    Stage.INSTRUCTIONS: "instructions",
    Stage.CONVERSATION: "dialogue",
    Stage.OCR: "OCR text",
    Stage.VERIFY: "verdicts",
}

# Stages that run on this machine, without a model endpoint or a prompt (their jobs and units have
# neither; cost 0): generation/services/ocr.py.
LOCAL_STAGES = frozenset({Stage.OCR})


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    CANCELLED = "cancelled", "Cancelled"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class GenerationJob(models.Model):
    # queued → running: a worker starts it (or cancelled before); running → paused | cancelled, and done |
    # failed when its units have all ended; paused → running (resume) | cancelled. Every move goes through
    # corpus.transitions.transition (one JobEvent each); the first event ("" → queued) is written at launch.
    STATUS_MOVES = {
        "status": {
            JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
            JobStatus.RUNNING: frozenset(
                {JobStatus.PAUSED, JobStatus.CANCELLED, JobStatus.DONE, JobStatus.FAILED}
            ),
            JobStatus.PAUSED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
            JobStatus.CANCELLED: frozenset(),
            JobStatus.DONE: frozenset(),
            JobStatus.FAILED: frozenset(),
        }
    }
    EVENT_MODEL = "generation.JobEvent"
    EVENT_FK = "job"

    stage = models.CharField(max_length=20, choices=Stage.choices)
    # {"domains": [slug…], "statuses": [review_status…], "limit": int|None, "image_ids": [..]|None,
    #  "include_drafts": bool}
    selection = models.JSONField(default=dict)
    # {"types": [...], "n_per_type": int, "seeds_per_prompt": int, "regeneration": bool}
    params = models.JSONField(default=dict)
    # None for a local stage (OCR): no model is called.
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    # The prompt versions in use: {"<domain id or 'default'>/<type or 'caption'>": template id}
    prompts = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # Units of the selection that another job already owns (done, or in flight): not this job's work.
    skipped = models.PositiveIntegerField(default=0)
    planned = models.BooleanField(default=False, help_text="All units of the selection exist.")
    # Why the plan has fewer units than the selection suggests (or none at all), in words for the admin:
    # "12 images have only draft captions: include drafts?". Written once, by planning.
    plan_note = models.TextField(blank=True)
    # A one-image job that review asked for (an annotator's "Regenerate"): the record of who asked and,
    # through its units, what it cost; the hourly quota counts these.
    is_regeneration = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When its pending units were last queued (the stall check waits at least this long before re-queuing).
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Serves the sweep's scan of active jobs (a handful among many ended ones).
            models.Index(fields=["status"], name="job_status_idx"),
            # Serves the regeneration quota: a user's regeneration jobs of the last hour.
            models.Index(
                fields=["launched_by", "created_at"],
                condition=Q(is_regeneration=True),
                name="job_regeneration_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.stage}, {self.status})"

    @property
    def unit_output(self) -> str:
        """What each of the job's units writes ("caption", "dialogue", …), for its page."""
        return UNIT_OUTPUT.get(self.stage, self.stage)

    @property
    def is_active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED)


class JobEvent(StatusEvent):
    """One status move of a job: from, to, who, when, why."""

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        pass

    def __str__(self) -> str:
        return f"job {self.job_id}: {super().__str__()}"


class UnitStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class GenerationUnit(models.Model):
    # pending → running: a worker claims it (services/units.py, with a lease and a fresh claim token);
    # running → done (its drafts written) | failed (the error kept) | pending (given back: its job was paused
    # or cancelled, or its lease ran out and the sweep freed it) | running (another worker took it over after
    # the lease ran out); failed → pending and pending → pending: a later job adopts the unit from an ended
    # job (services/jobs.py plan_units). Every move goes through corpus.transitions.transition, guarded by
    # the claim token or the lease, and writes one UnitEvent. A unit's creation writes none (bulk planning;
    # its created_at says when).
    STATUS_MOVES = {
        "status": {
            UnitStatus.PENDING: frozenset({UnitStatus.RUNNING, UnitStatus.PENDING}),
            UnitStatus.RUNNING: frozenset(
                {UnitStatus.DONE, UnitStatus.FAILED, UnitStatus.PENDING, UnitStatus.RUNNING}
            ),
            UnitStatus.FAILED: frozenset({UnitStatus.PENDING}),
            UnitStatus.DONE: frozenset(),
        }
    }
    EVENT_MODEL = "generation.UnitEvent"
    EVENT_FK = "unit"

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="units")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    instruction_type = models.CharField(max_length=20, blank=True)
    # Both None for a local stage (OCR), whose key is (image, stage, round): generation_unit_local_key.
    prompt = models.ForeignKey(
        PromptTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    endpoint = models.ForeignKey(Endpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # 0 for the first generation of a key; a regeneration asked for by review takes the next round, so it
    # is a new unit that may run although the round before it is done.
    round = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=UnitStatus.choices, default=UnitStatus.PENDING)
    # A running unit belongs to a worker until this time; after it, a sweep or a redelivered task may
    # take it again (the worker died). Long enough for every attempt of one unit.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Set by each claim: only the holder of the current token may write the result, so a worker whose
    # lease ran out (and whose unit someone else took) can never add a second draft.
    claim_token = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    drafts = models.PositiveIntegerField(default=0, help_text="Captions or instructions written.")
    invalid = models.PositiveIntegerField(default=0, help_text="Of which broke the type rules.")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "stage", "instruction_type", "prompt", "endpoint", "round"],
                name="generation_unit_key",
            ),
            # NULLs are distinct in the key above: a local stage's units (no prompt, no endpoint) need
            # their own, or a redelivered planning task would plan them twice.
            models.UniqueConstraint(
                fields=["image", "stage", "round"],
                condition=Q(prompt__isnull=True, endpoint__isnull=True),
                name="generation_unit_local_key",
            ),
        ]
        indexes = [
            # Serves the job's progress counts (GROUP BY status) and "pending units of a job" on resume.
            models.Index(fields=["job", "status"], name="unit_job_status_idx"),
            # Serves the cost page's totals by day.
            models.Index(fields=["finished_at"], name="unit_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"Unit {self.pk} ({self.stage} image {self.image_id}, {self.status})"


class UnitEvent(StatusEvent):
    """One status move of a unit: claimed, done, failed, given back, taken over, adopted (the note says
    which job adopted it)."""

    # One index, (unit, at), serves both a unit's history and the cascade on delete: a separate index on
    # unit_id would only cost every claim and result write one more index entry.
    unit = models.ForeignKey(GenerationUnit, on_delete=models.CASCADE, related_name="events", db_index=False)

    class Meta(StatusEvent.Meta):
        indexes = [models.Index(fields=["unit", "at"], name="unit_event_idx")]

    def __str__(self) -> str:
        return f"unit {self.unit_id}: {super().__str__()}"


class UnitFailure(models.Model):
    """One failure of a unit in one job: the job's own failure history and the ledger of what failed
    attempts cost. A later job that adopts the unit (and may finish it) leaves these rows with the job
    that failed, so that job still shows its errors, its failed count and its spend."""

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="failures")
    unit = models.ForeignKey(GenerationUnit, on_delete=models.CASCADE, related_name="failures")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    instruction_type = models.CharField(max_length=20, blank=True)
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # Serves a job's latest errors and its failure counts and sums.
            models.Index(fields=["job", "at"], name="failure_job_at_idx"),
            # Serves the cost page's totals by day.
            models.Index(fields=["at"], name="failure_at_idx"),
        ]

    def __str__(self) -> str:
        return f"unit {self.unit_id} failed in job {self.job_id}"
