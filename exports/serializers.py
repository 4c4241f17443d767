"""DRF serializers of the exports app (explicit fields; nothing here runs a query)."""

from django.urls import reverse
from rest_framework import serializers

from exports import selectors
from exports.models import ConversationMode, ExportFormat, ExportSpec, ExportVersion, ImageMode
from exports.services.specs import SEED_MAX


class ExportVersionSerializer(serializers.ModelSerializer):
    spec_name = serializers.CharField(source="spec.name", read_only=True)
    built_by = serializers.CharField(source="built_by.username", read_only=True, default=None)
    progress = serializers.SerializerMethodField()  # reads a small file, never the database
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportVersion
        fields = [
            "id",
            "spec",
            "spec_name",
            "number",
            "status",
            "size_bytes",
            "sha256",
            "counts",
            "error",
            "built_by",
            "created_at",
            "started_at",
            "finished_at",
            "progress",
            "download_url",
        ]

    def get_progress(self, version) -> dict | None:
        return selectors.progress_of(version)

    def get_download_url(self, version) -> str | None:
        if version.status != "done":
            return None
        return reverse("export-version-download", args=[version.pk])


class ExportSpecSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    versions = ExportVersionSerializer(many=True, read_only=True)

    class Meta:
        model = ExportSpec
        fields = [
            "id",
            "name",
            "description",
            "selection",
            "train_ratio",
            "seed",
            "formats",
            "image_mode",
            "conversation_mode",
            "include_captions",
            "created_by",
            "created_at",
            "versions",
        ]


class ExportSpecCreateSerializer(serializers.Serializer):
    """Input of POST /api/v1/exports/: the spec; the service checks the selection for real."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    selection = serializers.DictField(required=False, default=dict)
    formats = serializers.ListField(
        child=serializers.ChoiceField(choices=ExportFormat.choices),
        required=False,
        default=["llava"],
        allow_empty=False,
        error_messages={"empty": f"Choose at least one format ({', '.join(ExportFormat.values)})."},
    )
    train_ratio = serializers.FloatField(required=False, default=0.95, min_value=0, max_value=1)
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=SEED_MAX)
    image_mode = serializers.ChoiceField(choices=ImageMode.choices, required=False, default=ImageMode.COPY)
    conversation_mode = serializers.ChoiceField(
        choices=ConversationMode.choices, required=False, default=ConversationMode.MULTI_TURN
    )
    include_captions = serializers.BooleanField(required=False, default=False)
