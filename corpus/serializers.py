"""API serializers of the corpus. Explicit fields; nothing here runs a query of its own (the viewsets
select and prefetch what is read). Also the input pieces every app's API shares: bounded ids, strict
text fields (a string, without control characters), the error bodies for the schema."""

import zipfile

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import (
    Caption,
    DatasetFormat,
    DatasetImport,
    Domain,
    Image,
    ImportBatch,
    Instruction,
    QualityFlag,
    SeedQuestion,
    Verdict,
)
from .rules import find_control_character, refuse_control_characters

# Bounds of the integers the API accepts: ids are bigint, versions and text offsets int (PostgreSQL's
# integer). Anything larger is a 400 naming the field, never an overflow deeper down.
ID_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


def _kind_of(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else type(value).__name__


class TextField(serializers.CharField):
    """A string as sent — a number, an object or a list is refused, not turned into text — without
    control characters (corpus.rules, the rule every text obeys). Whitespace is kept as typed."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        self.validators.append(refuse_control_characters)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(f"Must be a string, not {_kind_of(data)}.", code="invalid")
        return super().to_internal_value(data)


class RefuseControlCharacters:
    """For model serializers: every text field refuses control characters (corpus.rules), without
    replacing the fields' own validators (unique names, slugs)."""

    def build_standard_field(self, field_name, model_field):
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, serializers.CharField):
            field_kwargs["validators"] = [*field_kwargs.get("validators", []), refuse_control_characters]
        return field_class, field_kwargs


class DomainSlugField(serializers.SlugRelatedField):
    """A domain named by its slug; text no slug can be (a control character, a NUL the database
    refuses to compare) is answered like an unknown slug instead of reaching the query."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or find_control_character(data) is not None:
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:100])
        return super().to_internal_value(data)


class RequestErrorSerializer(serializers.Serializer):
    """What the API answers for a request it refuses (400 and 404 alike): `detail` says why, `errors`
    names each refused field with its messages."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class SeedQuestionSerializer(RefuseControlCharacters, serializers.ModelSerializer):
    class Meta:
        model = SeedQuestion
        fields = ["id", "type", "question", "options", "answer"]


class DomainSerializer(RefuseControlCharacters, serializers.ModelSerializer):
    seed_questions = SeedQuestionSerializer(many=True, read_only=True)

    class Meta:
        model = Domain
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "guidelines",
            "is_active",
            "ocr_enabled",
            "seed_questions",
        ]


class ImageSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    file = serializers.ImageField(read_only=True, use_url=True)
    thumbnail = serializers.ImageField(read_only=True, use_url=True)

    class Meta:
        model = Image
        fields = [
            "id",
            "domain",
            "original_name",
            "file",
            "thumbnail",
            "sha256",
            "phash",
            "near_duplicate_of",
            "width",
            "height",
            "format",
            "source",
            "license",
            "prior_knowledge",
            "ocr_text",
            "is_sample",
            "review_status",
            "imported_at",
        ]
        read_only_fields = fields


class ImageUploadSerializer(serializers.Serializer):
    """Multipart input of POST /api/v1/images/upload/: one or more image or .zip files."""

    domain = DomainSlugField(slug_field="slug", queryset=Domain.objects.filter(is_active=True))
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)
    source = TextField(required=False, allow_blank=True, default="", max_length=500)
    license = TextField(required=False, allow_blank=True, default="", max_length=500)
    prior_knowledge = TextField(required=False, allow_blank=True, default="", max_length=500)


class FileResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField(help_text="imported, duplicate or rejected")
    reason = serializers.CharField()
    image_id = serializers.IntegerField(allow_null=True)
    duplicate_of = serializers.IntegerField(allow_null=True)
    near_duplicate_of = serializers.IntegerField(allow_null=True)


class ImportSummarySerializer(serializers.Serializer):
    imported = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    near_duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    unreadable = serializers.IntegerField()
    files = FileResultSerializer(many=True)


class ImportBatchSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    summary = serializers.SerializerMethodField()

    class Meta:
        model = ImportBatch
        fields = [
            "id",
            "domain",
            "status",
            "n_files",
            "summary",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ImportSummarySerializer(allow_null=True))
    def get_summary(self, batch: ImportBatch) -> dict | None:
        """The stored summary once the batch is done (no query: it is a column of the batch)."""
        return batch.summary or None


class CaptionSerializer(serializers.ModelSerializer):
    domain = serializers.CharField(source="image.domain.slug", read_only=True)
    # "" (unknown: a person's or an imported item) is no choice: a plain string, documented as such.
    language = serializers.CharField(read_only=True, help_text='"en", "zh", or "" when unknown.')

    class Meta:
        model = Caption
        fields = [
            "id",
            "image",
            "domain",
            "text",
            "status",
            "origin",
            "model_name",
            "prompt_version",
            "language",
            "generation_unit_id",
            "version",
            "reason",
            "tokens_in",
            "tokens_out",
            "latency_ms",
            "cost",
            "created_at",
            "updated_at",
            "reviewed_at",
        ]
        read_only_fields = fields


class QualityFlagSerializer(serializers.ModelSerializer):
    class Meta:
        model = QualityFlag
        fields = ["code", "message", "checks_version"]
        read_only_fields = fields


class VerdictSerializer(serializers.ModelSerializer):
    category = serializers.CharField(read_only=True, help_text='A hallucination category, or "".')

    class Meta:
        model = Verdict
        fields = [
            "verdict", "reason", "category", "item_version", "endpoint_name", "model_name", "prompt_version",
            "tokens_in", "tokens_out", "cost", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class InstructionSerializer(serializers.ModelSerializer):
    domain = serializers.CharField(source="image.domain.slug", read_only=True)
    # "" (unknown: a person's or an imported item) is no choice: a plain string, documented as such.
    language = serializers.CharField(read_only=True, help_text='"en", "zh", or "" when unknown.')
    flags = QualityFlagSerializer(many=True, read_only=True)
    verdicts = VerdictSerializer(many=True, read_only=True)

    class Meta:
        model = Instruction
        fields = [
            "id",
            "image",
            "domain",
            "caption",
            "conversation",
            "turn",
            "type",
            "question",
            "options",
            "answer",
            "status",
            "origin",
            "model_name",
            "prompt_version",
            "language",
            "generation_unit_id",
            "version",
            "reason",
            "created_at",
            "updated_at",
            "reviewed_at",
            "flags",
            "verdicts",
        ]
        read_only_fields = fields


class DatasetUploadSerializer(serializers.Serializer):
    """What a dataset upload sends beside its files: the data file, an optional .zip of the images its
    records name, the format, the domain, the source dataset's name and the status to import as."""

    data = serializers.FileField(help_text="The data file: LLaVA JSON, ShareGPT/InternVL JSONL or Parquet.")
    images = serializers.FileField(required=False, help_text="A .zip of the images the records name.")
    format = serializers.ChoiceField(choices=DatasetFormat.choices)
    domain = DomainSlugField(slug_field="slug", queryset=Domain.objects.filter(is_active=True))
    name = TextField(required=False, max_length=200, default="", help_text="Default: the data file's name.")
    status = serializers.ChoiceField(choices=[("draft", "draft"), ("accepted", "accepted")], default="draft")

    def validate_images(self, value):
        if value is not None and not zipfile.is_zipfile(value):
            raise serializers.ValidationError("Must be a .zip archive of the images.")
        value.seek(0)
        return value


class DatasetImportSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = DatasetImport
        fields = [
            "id",
            "name",
            "format",
            "domain",
            "as_accepted",
            "status",
            "records_done",
            "summary",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
