"""REST endpoints of the generation app, mounted under /api/v1/ (admins only)."""

import django_filters
from django.db.models import Count, Q, Sum
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from corpus.models import Domain
from corpus.roles import ADMIN
from corpus.rules import InstructionType

from . import services
from .models import Endpoint, GenerationJob, PromptTemplate, Stage, UnitStatus
from .services import endpoints as endpoint_service


class EndpointSerializer(serializers.ModelSerializer):
    key_is_set = serializers.SerializerMethodField(
        help_text="Whether the key variable is set (never the key)."
    )

    class Meta:
        model = Endpoint
        fields = [
            "id", "name", "kind", "base_url", "api_key_env", "key_is_set", "model", "price_in_per_m",
            "price_out_per_m", "rpm_limit", "tpm_limit", "max_concurrency", "timeout", "supports_json_schema",
            "is_default",
        ]  # fmt: skip
        read_only_fields = ["is_default"]

    def get_key_is_set(self, obj) -> bool:  # reads the environment, not the database
        return endpoint_service.key_is_set(obj)


class EndpointViewSet(viewsets.ModelViewSet):
    """Model endpoints. Make one the default of its kind with POST …/make_default/."""

    queryset = Endpoint.objects.all()
    serializer_class = EndpointSerializer
    allowed_roles = (ADMIN,)
    filterset_fields = ["kind", "is_default"]

    @extend_schema(request=None, responses=EndpointSerializer)
    @action(detail=True, methods=["post"])
    def make_default(self, request, pk=None):
        endpoint = self.get_object()
        endpoint_service.make_default(endpoint)
        endpoint.refresh_from_db()
        return Response(EndpointSerializer(endpoint).data)


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
        try:
            template = services.save_template(
                kind=data["kind"],
                text=data["text"],
                by=request.user,
                domain=data.get("domain"),
                instruction_type=data.get("instruction_type", ""),
                note=data.get("note", ""),
            )
        except services.TemplateError as e:
            return Response({"text": [str(e)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(template).data, status=status.HTTP_201_CREATED)


class LaunchSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(choices=Stage.choices)
    domains = serializers.ListField(child=serializers.SlugField(), min_length=1)
    endpoint = serializers.CharField(
        required=False, allow_blank=True, help_text="Endpoint name; default of the kind."
    )
    statuses = serializers.ListField(child=serializers.CharField(), required=False)
    limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    include_drafts = serializers.BooleanField(default=False)
    types = serializers.ListField(
        child=serializers.ChoiceField(choices=InstructionType.choices), required=False
    )
    n_per_type = serializers.IntegerField(min_value=1, max_value=20, default=3)
    seeds_per_prompt = serializers.IntegerField(min_value=0, max_value=10, default=2)


class JobSerializer(serializers.ModelSerializer):
    endpoint = serializers.SlugRelatedField(slug_field="name", read_only=True)
    launched_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    total = serializers.SerializerMethodField()
    done = serializers.IntegerField(source="n_done", read_only=True)
    failed = serializers.IntegerField(source="n_failed", read_only=True)
    pending = serializers.IntegerField(source="n_pending", read_only=True)
    running = serializers.IntegerField(source="n_running", read_only=True)
    tokens_in = serializers.IntegerField(source="sum_tokens_in", read_only=True)
    tokens_out = serializers.IntegerField(source="sum_tokens_out", read_only=True)
    cost = serializers.DecimalField(source="sum_cost", max_digits=14, decimal_places=6, read_only=True)

    class Meta:
        model = GenerationJob
        fields = [
            "id", "stage", "status", "selection", "params", "prompts", "endpoint", "launched_by", "total", "done",
            "failed", "skipped", "pending", "running", "tokens_in", "tokens_out", "cost", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip

    def get_total(self, obj) -> int:  # from the annotations, no query
        return obj.n_units + obj.skipped


class JobFilter(django_filters.FilterSet):
    class Meta:
        model = GenerationJob
        fields = ["stage", "status"]


def annotated_jobs():
    """Jobs with their unit counts and sums, in the one query the list needs."""

    def n(status):
        return Count("units", filter=Q(units__status=status))

    return GenerationJob.objects.select_related("endpoint", "launched_by").annotate(
        n_units=Count("units"),
        n_done=n(UnitStatus.DONE),
        n_failed=n(UnitStatus.FAILED),
        n_pending=n(UnitStatus.PENDING),
        n_running=n(UnitStatus.RUNNING),
        sum_tokens_in=Sum("units__tokens_in", default=0),
        sum_tokens_out=Sum("units__tokens_out", default=0),
        sum_cost=Sum("units__cost", default=0),
    )


class JobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Generation jobs. POST launches one (202); pause/resume/cancel are actions (202, or 409)."""

    serializer_class = JobSerializer
    allowed_roles = (ADMIN,)
    filterset_class = JobFilter
    throttle_scope = {"create": "job_launch"}  # corpus.throttles.ActionThrottle

    def get_queryset(self):
        return annotated_jobs().order_by("-id")

    @extend_schema(request=LaunchSerializer, responses={202: JobSerializer})
    def create(self, request, *args, **kwargs):
        data = LaunchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            job = services.launch_job(
                stage=v["stage"],
                by=request.user,
                domains=v["domains"],
                endpoint_name=v.get("endpoint") or None,
                statuses=v.get("statuses"),
                limit=v.get("limit"),
                include_drafts=v["include_drafts"],
                types=v.get("types"),
                n_per_type=v["n_per_type"],
                seeds_per_prompt=v["seeds_per_prompt"],
            )
        except services.LaunchError as e:
            return Response({"detail": str(e)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            JobSerializer(self.get_queryset().get(pk=job.pk)).data, status=status.HTTP_202_ACCEPTED
        )

    def _control(self, request, do):
        job = self.get_object()
        if not do(job, by=request.user):
            return Response({"detail": f"the job is {job.status}"}, status=status.HTTP_409_CONFLICT)
        return Response(
            JobSerializer(self.get_queryset().get(pk=job.pk)).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._control(request, services.pause_job)

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._control(request, services.resume_job)

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._control(request, services.cancel_job)


def register(router) -> None:
    """Add this app's viewsets to the one /api/v1/ router."""
    router.register("generation/endpoints", EndpointViewSet, basename="generation-endpoint")
    router.register("generation/prompts", PromptTemplateViewSet, basename="generation-prompt")
    router.register("generation/jobs", JobViewSet, basename="generation-job")


urlpatterns: list = []
