"""REST endpoints for domains, images, captions and instructions, mounted under /api/v1/."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.roles import ADMIN, ALL_ROLES

from .filters import CaptionFilter, ImageFilter, InstructionFilter
from .models import Caption, DatasetImport, Domain, Image, ImportBatch, Instruction
from .serializers import (
    CaptionSerializer,
    DatasetImportSerializer,
    DatasetUploadSerializer,
    DomainSerializer,
    ImageSerializer,
    ImageUploadSerializer,
    ImportBatchSerializer,
    ImportSummarySerializer,
    InstructionSerializer,
    RequestErrorSerializer,
)
from .services.dataset_import import stage_dataset_upload
from .services.import_batches import needs_background, stage_upload
from .services.imports import import_images, sources_from_uploads

BAD_REQUEST = OpenApiResponse(
    RequestErrorSerializer, description="A refused input: `errors` names each field."
)
NOT_FOUND = OpenApiResponse(RequestErrorSerializer, description="No such object.")
LIST_ERRORS = {400: BAD_REQUEST}  # a filter value that is not one (an id beyond 64 bits, a NUL)
READ_ERRORS = {404: NOT_FOUND}


@extend_schema_view(
    list=extend_schema(responses={200: DomainSerializer(many=True), **LIST_ERRORS}),
    retrieve=extend_schema(responses={200: DomainSerializer, **READ_ERRORS}),
    create=extend_schema(responses={201: DomainSerializer, 400: BAD_REQUEST}),
    update=extend_schema(responses={200: DomainSerializer, 400: BAD_REQUEST, **READ_ERRORS}),
    partial_update=extend_schema(responses={200: DomainSerializer, 400: BAD_REQUEST, **READ_ERRORS}),
)
class DomainViewSet(
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    """Domains with their seed questions. Every role reads; admins create and edit (no delete: images
    keep their domain)."""

    serializer_class = DomainSerializer
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"  # a slug; anything else is no domain (404 from the router)
    allowed_roles = ALL_ROLES
    write_roles = (ADMIN,)
    queryset = Domain.objects.prefetch_related("seed_questions")
    filterset_fields = ["is_active"]


@extend_schema_view(
    list=extend_schema(responses={200: ImageSerializer(many=True), **LIST_ERRORS}),
    retrieve=extend_schema(responses={200: ImageSerializer, **READ_ERRORS}),
)
class ImageViewSet(viewsets.ReadOnlyModelViewSet):
    """Images; `upload` imports files through the same service as the command and the upload page."""

    serializer_class = ImageSerializer
    filterset_class = ImageFilter
    allowed_roles = ALL_ROLES
    action_roles = {"upload": (ADMIN,)}
    queryset = Image.objects.with_domain().order_by("id")

    @extend_schema(
        request={"multipart/form-data": ImageUploadSerializer},
        responses={201: ImportSummarySerializer, 200: ImportSummarySerializer, 202: ImportBatchSerializer},
        description="Import image files or .zip archives (field `files`, repeated). Small uploads are imported "
        "at once: 201 when at least one image was imported, 200 when none was (all duplicates or rejected), "
        "with each file's result. Uploads holding a .zip or above IMPORT_INLINE_MAX_FILES / "
        "IMPORT_INLINE_MAX_BYTES are staged and imported by a worker: 202 with the batch, whose summary "
        "appears at /api/v1/import-batches/{id}/ when its status is done.",
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser])
    def upload(self, request):
        data = {key: request.data.get(key) for key in ("domain", "source", "license", "prior_knowledge")}
        data = {key: value for key, value in data.items() if value is not None}
        data["files"] = request.FILES.getlist("files")
        serializer = ImageUploadSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        form = serializer.validated_data
        fields = {
            "domain": form["domain"],
            "by": request.user,
            "source": form["source"],
            "license": form["license"],
            "prior_knowledge": form["prior_knowledge"],
        }
        if needs_background(form["files"]):
            batch = stage_upload(form["files"], **fields)
            return Response(ImportBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)
        summary = import_images(sources_from_uploads(form["files"]), **fields)
        code = status.HTTP_201_CREATED if summary.imported else status.HTTP_200_OK
        return Response(ImportSummarySerializer(summary.as_dict()).data, status=code)


@extend_schema_view(retrieve=extend_schema(responses={200: ImportBatchSerializer, **READ_ERRORS}))
class ImportBatchViewSet(viewsets.ReadOnlyModelViewSet):
    """Uploads imported in the background, with their summary once done. Admins only."""

    serializer_class = ImportBatchSerializer
    allowed_roles = (ADMIN,)
    queryset = ImportBatch.objects.select_related("domain").order_by("-id")


@extend_schema_view(
    list=extend_schema(responses={200: DatasetImportSerializer(many=True), **LIST_ERRORS}),
    retrieve=extend_schema(responses={200: DatasetImportSerializer, **READ_ERRORS}),
    create=extend_schema(
        request={"multipart/form-data": DatasetUploadSerializer},
        responses={202: DatasetImportSerializer, 400: BAD_REQUEST},
        description="Import an instruction dataset (docs/datasets.md): the data file (`data`) and a .zip of "
        "its images (`images`, unless the records embed them) are staged and imported by a worker — 202 with "
        "the import, whose `records_done` grows while it runs and whose `summary` names every skipped record "
        "and reused image once its status is done.",
    ),
)
class DatasetImportViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Instruction datasets brought in, with their progress and summary. Admins only."""

    serializer_class = DatasetImportSerializer
    allowed_roles = (ADMIN,)
    parser_classes = [MultiPartParser]
    queryset = DatasetImport.objects.select_related("domain").order_by("-id")

    def create(self, request, *args, **kwargs):
        data = {key: request.data.get(key) for key in ("format", "domain", "name", "status")}
        data = {key: value for key, value in data.items() if value is not None}
        for key in ("data", "images"):
            if key in request.FILES:
                data[key] = request.FILES[key]
        serializer = DatasetUploadSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        form = serializer.validated_data
        dataset_import = stage_dataset_upload(
            form["data"],
            images_upload=form.get("images"),
            format=form["format"],
            domain=form["domain"],
            name=form["name"],
            status=form["status"],
            by=request.user,
        )
        return Response(DatasetImportSerializer(dataset_import).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(responses={200: CaptionSerializer(many=True), **LIST_ERRORS}),
    retrieve=extend_schema(responses={200: CaptionSerializer, **READ_ERRORS}),
)
class CaptionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CaptionSerializer
    filterset_class = CaptionFilter
    allowed_roles = ALL_ROLES
    queryset = Caption.objects.select_related("image__domain").order_by("id")


@extend_schema_view(
    list=extend_schema(responses={200: InstructionSerializer(many=True), **LIST_ERRORS}),
    retrieve=extend_schema(responses={200: InstructionSerializer, **READ_ERRORS}),
)
class InstructionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = InstructionSerializer
    filterset_class = InstructionFilter
    allowed_roles = ALL_ROLES
    # The automatic checks' flags and the verifier's verdicts: one prefetch each, whatever the page size.
    queryset = (
        Instruction.objects.select_related("image__domain")
        .prefetch_related("flags", "verdicts")
        .order_by("id")
    )


def register(router) -> None:
    """Add this app's viewsets to the one /api/v1/ router."""
    router.register("domains", DomainViewSet, basename="domain")
    router.register("images", ImageViewSet, basename="image")
    router.register("import-batches", ImportBatchViewSet, basename="import-batch")
    router.register("dataset-imports", DatasetImportViewSet, basename="dataset-import")
    router.register("captions", CaptionViewSet, basename="caption")
    router.register("instructions", InstructionViewSet, basename="instruction")


urlpatterns: list = []
