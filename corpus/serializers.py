"""API serializers of the corpus. Explicit fields; nothing here runs a query of its own (the viewsets
select and prefetch what is read)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Caption, Domain, Image, ImportBatch, Instruction, SeedQuestion


class SeedQuestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = SeedQuestion
        fields = ["id", "type", "question", "options", "answer"]


class DomainSerializer(serializers.ModelSerializer):
    seed_questions = SeedQuestionSerializer(many=True, read_only=True)

    class Meta:
        model = Domain
        fields = ["id", "name", "slug", "description", "guidelines", "is_active", "seed_questions"]


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

    domain = serializers.SlugRelatedField(slug_field="slug", queryset=Domain.objects.filter(is_active=True))
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)
    source = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    license = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    prior_knowledge = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


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


class InstructionSerializer(serializers.ModelSerializer):
    domain = serializers.CharField(source="image.domain.slug", read_only=True)

    class Meta:
        model = Instruction
        fields = [
            "id",
            "image",
            "domain",
            "caption",
            "type",
            "question",
            "options",
            "answer",
            "status",
            "origin",
            "model_name",
            "prompt_version",
            "generation_unit_id",
            "version",
            "reason",
            "created_at",
            "updated_at",
            "reviewed_at",
        ]
        read_only_fields = fields
