"""REST endpoints of the generation app, mounted under /api/v1/ (admins only).

The viewsets parse input, call one service or selector and answer. Domain errors are not caught here:
API_ERROR_STATUS (the generation block of settings.py) maps them — a LaunchError or TemplateError to a
400 naming the field, NeedsConfirmation, EndpointInUse and TemplateChanged to a 409 — and the project's
exception handler (web.api_errors) answers every one in the same shape."""

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.roles import ADMIN
from corpus.models import Domain, ReviewStatus
from corpus.rules import InstructionType
from web.api_errors import Conflict

from . import selectors
from .models import Endpoint, GenerationJob, PromptTemplate, Stage
from .services import endpoints as endpoint_service
from .services import jobs as job_service
from .services import prompts as prompt_service
from .validators import refuse_control_characters_single_line


class EndpointSerializer(serializers.ModelSerializer):
    key_is_set = serializers.SerializerMethodField(
        help_text="Whether the key variable is set (never the key)."
    )

    class Meta:
        model = Endpoint
        fields = [
            "id", "name", "kind", "base_url", "api_key_env", "key_is_set", "model", "price_in_per_m",
            "price_out_per_m", "rpm_limit", "tpm_limit", "max_concurrency", "timeout", "supports_json_schema",
            "is_default", "last_test_at", "last_test_ok", "last_test_status", "last_test_latency_ms",
            "last_test_error",
        ]  # fmt: skip
        read_only_fields = [
            "is_default", "last_test_at", "last_test_ok", "last_test_status", "last_test_latency_ms",
            "last_test_error",
        ]  # fmt: skip

    def get_key_is_set(self, obj) -> bool:  # reads the environment, not the database
        return endpoint_service.key_is_set(obj)


class ConnectionReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    url = serializers.CharField(help_text="The URL called.")
    model = serializers.CharField()
    status = serializers.IntegerField(allow_null=True, help_text="HTTP status; null when nothing answered.")
    latency_ms = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)


class EndpointViewSet(viewsets.ModelViewSet):
    """Model endpoints. Make one the default of its kind with POST …/make_default/; check it with POST
    …/test_connection/ (one cheap call). Deleting an endpoint that jobs used answers 409."""

    queryset = Endpoint.objects.all()
    serializer_class = EndpointSerializer
    allowed_roles = (ADMIN,)
    filterset_fields = ["kind", "is_default"]

    def perform_create(self, serializer):
        serializer.instance = endpoint_service.create_endpoint(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = endpoint_service.update_endpoint(
            serializer.instance, **serializer.validated_data
        )

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="Jobs use the endpoint.")})
    def destroy(self, request, *args, **kwargs):
        endpoint_service.delete_endpoint(self.get_object())  # EndpointInUse → 409 (API_ERROR_STATUS)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=EndpointSerializer)
    @action(detail=True, methods=["post"])
    def make_default(self, request, pk=None):
        endpoint = self.get_object()
        endpoint_service.make_default(endpoint)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(request=None, responses=ConnectionReportSerializer)
    @action(detail=True, methods=["post"])
    def test_connection(self, request, pk=None):
        """One cheap call to the endpoint (a one-token completion): URL, model, HTTP status, latency and
        the error text. The result is stored on the endpoint (last_test_*); a launch on an endpoint whose
        last test failed needs force=true."""
        report = endpoint_service.record_test(self.get_object())
        return Response(ConnectionReportSerializer(report).data)


class PromptTemplateSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(
        slug_field="slug", queryset=Domain.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = PromptTemplate
        fields = [
            "id",
            "kind",
            "domain",
            "instruction_type",
            "version",
            "language",
            "text",
            "note",
            "is_current",
            "created_at",
        ]
        read_only_fields = ["version", "is_current", "created_at"]


class PromptTemplateViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Prompt versions. POST makes the next version of (kind, domain, type) and makes it current."""

    queryset = PromptTemplate.objects.select_related("domain").order_by(
        "kind", "instruction_type", "-version"
    )
    serializer_class = PromptTemplateSerializer
    allowed_roles = (ADMIN,)
    filterset_fields = ["kind", "instruction_type", "is_current"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        template = prompt_service.save_template(  # TemplateError → 400 naming the field (API_ERROR_STATUS)
            kind=data["kind"],
            text=data["text"],
            by=request.user,
            domain=data.get("domain"),
            instruction_type=data.get("instruction_type", ""),
            note=data.get("note", ""),
            language=data.get("language"),
        )
        return Response(self.get_serializer(template).data, status=status.HTTP_201_CREATED)


MAX_IMAGE_ID = 2**63 - 1  # a bigint
MAX_CHOSEN_IMAGES = 10_000


class LaunchSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(choices=Stage.choices)
    domains = serializers.ListField(
        child=serializers.SlugField(max_length=100), min_length=1, max_length=1000
    )
    endpoint = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        validators=[refuse_control_characters_single_line],
        help_text="Endpoint name; default of the kind.",
    )
    statuses = serializers.ListField(
        child=serializers.ChoiceField(choices=ReviewStatus.choices), required=False, max_length=20
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=job_service.MAX_LIMIT, required=False, allow_null=True
    )
    image_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_IMAGE_ID),
        required=False,
        min_length=1,
        max_length=MAX_CHOSEN_IMAGES,
        help_text=(
            "These images only, each in one of `domains` (400 naming image_ids otherwise). They are taken as"
            " chosen: `statuses` does not apply, and an image the stage cannot work on (no caption yet, say)"
            " fails its unit with the reason."
        ),
    )
    include_drafts = serializers.BooleanField(default=False)
    types = serializers.ListField(
        child=serializers.ChoiceField(choices=InstructionType.choices), required=False, max_length=20
    )
    n_per_type = serializers.IntegerField(min_value=1, max_value=20, default=3)
    seeds_per_prompt = serializers.IntegerField(min_value=0, max_value=10, default=2)
    force = serializers.BooleanField(
        default=False,
        help_text="Launch although the endpoint's key variable is not set or its last connection test failed.",
    )


class JobSerializer(serializers.ModelSerializer):
    endpoint = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True, help_text="null for a local stage (OCR)."
    )
    launched_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    total = serializers.SerializerMethodField()
    done = serializers.IntegerField(source="n_done", read_only=True)
    failed = serializers.IntegerField(
        source="n_failed",
        read_only=True,
        help_text="Units that failed in this job, including those a later job adopted since.",
    )
    pending = serializers.IntegerField(source="n_pending", read_only=True)
    running = serializers.IntegerField(source="n_running", read_only=True)
    tokens_in = serializers.IntegerField(source="total_tokens_in", read_only=True)
    tokens_out = serializers.IntegerField(source="total_tokens_out", read_only=True)
    cost = serializers.DecimalField(source="total_cost", max_digits=14, decimal_places=6, read_only=True)

    class Meta:
        model = GenerationJob
        fields = [
            "id", "stage", "status", "selection", "params", "prompts", "endpoint", "launched_by",
            "is_regeneration", "total", "done", "failed", "skipped", "pending", "running", "tokens_in",
            "tokens_out", "cost", "plan_note", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_total(self, obj) -> int:  # from the annotations of jobs_with_counts(): no query per row
        return obj.n_units + obj.skipped + obj.n_handed_on


class JobFilter(django_filters.FilterSet):
    class Meta:
        model = GenerationJob
        fields = ["stage", "status", "is_regeneration"]


class JobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Generation jobs. POST launches one (202; 400 naming the field; 409 when the endpoint is known to be
    broken and force is not set); pause/resume/cancel are actions (202, or 409). Reading never changes
    anything: recovery is Celery beat's sweep."""

    serializer_class = JobSerializer
    allowed_roles = (ADMIN,)
    filterset_class = JobFilter
    throttle_scope = {"create": "job_launch"}  # accounts.throttles.ActionThrottle

    def get_queryset(self):
        return selectors.jobs_with_counts()

    def _answer(self, job) -> Response:
        return Response(
            JobSerializer(selectors.job_with_counts(job.pk)).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        request=LaunchSerializer,
        responses={
            202: JobSerializer,
            400: OpenApiResponse(description="Bad input; the field is named."),
            409: OpenApiResponse(description="The endpoint's key is not set or its last test failed."),
        },
    )
    def create(self, request, *args, **kwargs):
        data = LaunchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        # LaunchError → 400 naming the field, NeedsConfirmation → 409 (API_ERROR_STATUS).
        job = job_service.launch_job(
            stage=v["stage"],
            by=request.user,
            domains=v["domains"],
            endpoint_name=v.get("endpoint") or None,
            statuses=v.get("statuses"),
            limit=v.get("limit"),
            image_ids=v.get("image_ids"),
            include_drafts=v["include_drafts"],
            types=v.get("types"),
            n_per_type=v["n_per_type"],
            seeds_per_prompt=v["seeds_per_prompt"],
            force=v["force"],
        )
        return self._answer(job)

    def _control(self, request, do):
        job = self.get_object()
        if not do(job, by=request.user):
            raise Conflict(f"the job is {job.status}")
        return self._answer(job)

    @extend_schema(
        request=None, responses={202: JobSerializer, 409: OpenApiResponse(description="Not running.")}
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._control(request, job_service.pause_job)

    @extend_schema(
        request=None, responses={202: JobSerializer, 409: OpenApiResponse(description="Not paused.")}
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._control(request, job_service.resume_job)

    @extend_schema(request=None, responses={202: JobSerializer, 409: OpenApiResponse(description="Ended.")})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._control(request, job_service.cancel_job)


def register(router) -> None:
    """Add this app's viewsets to the one /api/v1/ router."""
    router.register("generation/endpoints", EndpointViewSet, basename="generation-endpoint")
    router.register("generation/prompts", PromptTemplateViewSet, basename="generation-prompt")
    router.register("generation/jobs", JobViewSet, basename="generation-job")


urlpatterns: list = []
