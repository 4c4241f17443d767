"""REST endpoints of the exports app, mounted under /api/v1/.

- GET/POST /api/v1/exports/ — exports with their versions; POST creates one and queues v1 (202).
- POST /api/v1/exports/{id}/build/ — queue the next version (202).
- GET /api/v1/export-versions/[{id}/] — versions with status, counts, sha256 and live progress.
- GET /api/v1/export-versions/{id}/download/ — the archive (streamed, ranges, sha256 in ETag/Digest).
- GET /api/v1/export-versions/{id}/diff/?against={id}[&format=csv] — added/removed/changed.

Reads go through exports.selectors, writes through exports.services; domain errors are not caught here
(API_ERROR_STATUS in settings: ExportError 409, InvalidRequest 400).
"""

import django_filters
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from exports import selectors
from exports.http import archive_response, diff_download
from exports.models import ExportVersion
from exports.permissions import BUILD_ROLES, read_roles
from exports.serializers import ExportSpecCreateSerializer, ExportSpecSerializer, ExportVersionSerializer
from exports.services.specs import create_spec, request_build
from web.api_schema import ErrorSerializer


class _ExportRoles:
    """Reads for researchers (and annotators when an admin allows it); writes for researchers."""

    @property
    def allowed_roles(self):
        return read_roles()

    write_roles = BUILD_ROLES


class ExportSpecViewSet(
    _ExportRoles,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ExportSpecSerializer
    throttle_scope = {"create": "export_build", "build": "export_build"}  # accounts.throttles.ActionThrottle

    def get_queryset(self):
        # Exports are the team's shared datasets: every researcher sees all of them.
        return selectors.specs_with_versions()

    @extend_schema(
        request=ExportSpecCreateSerializer,
        responses={
            202: ExportVersionSerializer,
            400: OpenApiResponse(description="A field of the spec is refused; the errors name it."),
        },
    )
    def create(self, request, *args, **kwargs):
        data = ExportSpecCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        spec = create_spec(fields.pop("name"), by=request.user, **fields)
        version = request_build(spec, by=request.user)
        return Response(ExportVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("domains", str, many=True, description="domain slugs (none: all)"),
            OpenApiParameter("types", str, many=True, description="instruction types (none: all)"),
            OpenApiParameter("statuses", str, many=True, description="item statuses (none: accepted)"),
            OpenApiParameter("models", str, description="model names, comma separated (empty: all)"),
            OpenApiParameter("date_from", str, description="YYYY-MM-DD"),
            OpenApiParameter("date_to", str, description="YYYY-MM-DD"),
        ],
        responses={
            200: OpenApiResponse(description="{instructions, images, sample: [records]}"),
            400: OpenApiResponse(ErrorSerializer, description="A field of the selection is refused."),
        },
    )
    @action(detail=False, methods=["get"])
    def preview(self, request):
        """What the selection matches now, before a build: instruction and image counts and the first
        records (the export form's live count). Reads only."""
        params = request.query_params
        raw = {key: [v for v in params.getlist(key) if v] for key in ("domains", "types", "statuses")}
        raw["models"] = [m.strip() for m in params.get("models", "").split(",") if m.strip()]
        for key in ("date_from", "date_to"):
            if params.get(key):
                raw[key] = params[key]
        return Response(selectors.preview_selection(raw))

    @extend_schema(request=None, responses={202: ExportVersionSerializer})
    @action(detail=True, methods=["post"])
    def build(self, request, pk=None):
        spec = self.get_object()
        version = request_build(spec, by=request.user)
        return Response(ExportVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)


class ExportVersionFilter(django_filters.FilterSet):
    class Meta:
        model = ExportVersion
        fields = ["spec", "status"]


class ExportVersionViewSet(_ExportRoles, viewsets.ReadOnlyModelViewSet):
    serializer_class = ExportVersionSerializer
    filterset_class = ExportVersionFilter

    def get_queryset(self):
        return selectors.versions().order_by("spec__name", "-number")

    @extend_schema(
        responses={
            (200, "application/x-tar"): bytes,
            (206, "application/x-tar"): OpenApiResponse(bytes, description="The requested byte range."),
            416: OpenApiResponse(description="The byte range lies beyond the archive."),
            409: OpenApiResponse(
                ErrorSerializer, description="Not built yet, or the file no longer matches its sha256."
            ),
        }
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        return archive_response(request, self.get_object())

    @extend_schema(
        parameters=[
            OpenApiParameter("against", int, required=True, description="the other version's id"),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={
            200: dict,
            400: OpenApiResponse(ErrorSerializer, description="`against` is not a version id."),
            409: OpenApiResponse(ErrorSerializer, description="A version's archive cannot be read."),
        },
    )
    @action(detail=True, methods=["get"], url_path="diff")
    def diff(self, request, pk=None):
        diff = selectors.diff_against(
            self.get_object(), request.query_params.get("against"), among=self.get_queryset()
        )
        if request.query_params.get("format") == "csv":
            return diff_download(diff, "csv")
        return HttpResponse(selectors.diff_as_json(diff), content_type="application/json")


def register(router) -> None:
    """Add this app's viewsets to the one /api/v1/ router."""
    router.register("exports", ExportSpecViewSet, basename="export")
    router.register("export-versions", ExportVersionViewSet, basename="export-version")


urlpatterns: list = []
