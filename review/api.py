"""REST endpoints of the review app, mounted under /api/v1/: next item, lease renew and release, save
with version (409 on a stale version or a lost lease), history, regeneration (202)."""

from django.core.files.storage import default_storage
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from corpus.models import Caption, Image, Instruction, ItemStatus, Revision
from corpus.roles import ANNOTATOR, RESEARCHER
from corpus.rules import InstructionRuleError
from corpus.services import InvalidTransition, StaleVersion

from .models import HallucinationCategory
from .services import corrections, queue
from .services.corrections import MarkError, MarkInput, RegenerationRefused
from .services.queue import LeaseError, LeaseHeld

# --- output -------------------------------------------------------------------------------------------


class ReviewCaptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Caption
        fields = ["id", "image", "text", "status", "origin", "model_name", "version", "reason", "updated_at"]


class ReviewInstructionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instruction
        fields = [
            "id",
            "image",
            "type",
            "question",
            "options",
            "answer",
            "status",
            "origin",
            "model_name",
            "version",
            "reason",
            "updated_at",
        ]


class ReviewImageSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    file = serializers.FileField(read_only=True, use_url=True)
    captions = ReviewCaptionSerializer(many=True, read_only=True)
    instructions = ReviewInstructionSerializer(many=True, read_only=True)
    page = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id",
            "domain",
            "file",
            "width",
            "height",
            "review_status",
            "lease_expires_at",
            "page",
            "captions",
            "instructions",
        ]

    def get_page(self, obj) -> str:
        return f"/review/image/{obj.pk}/"


class ClaimSerializer(serializers.Serializer):
    """What next-item answers, straight from the claim statement (no further query)."""

    id = serializers.IntegerField(source="image_id")
    domain = serializers.CharField(source="domain_slug")
    file = serializers.SerializerMethodField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    review_status = serializers.SerializerMethodField()
    lease_expires_at = serializers.DateTimeField()
    page = serializers.SerializerMethodField()
    detail = serializers.SerializerMethodField()

    def get_file(self, claim) -> str:
        return default_storage.url(claim.file)

    def get_review_status(self, claim) -> str:
        return "in_review"

    def get_page(self, claim) -> str:
        return f"/review/image/{claim.image_id}/"

    def get_detail(self, claim) -> str:
        return f"/api/v1/review/images/{claim.image_id}/"


class RevisionSerializer(serializers.ModelSerializer):
    by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Revision
        fields = ["version", "action", "by", "at", "before", "after", "note"]


# --- input ---------------------------------------------------------------------------------------------


class NextInput(serializers.Serializer):
    domains = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, default=list)


class MarkInputSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=HallucinationCategory.choices)
    field = serializers.CharField(required=False, default="")
    span_start = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0)
    span_end = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0)
    note = serializers.CharField(required=False, default="", allow_blank=True)


class SaveInput(serializers.Serializer):
    expected_version = serializers.IntegerField(min_value=1)
    changes = serializers.DictField(required=False, default=dict)
    status = serializers.ChoiceField(
        choices=[ItemStatus.ACCEPTED, ItemStatus.REJECTED, ItemStatus.DRAFT],
        required=False,
        allow_null=True,
        default=None,
    )
    reason = serializers.CharField(required=False, default="", allow_blank=True)
    note = serializers.CharField(required=False, default="", allow_blank=True)
    hallucinations = MarkInputSerializer(many=True, required=False, default=list)

    def validate(self, attrs):
        if attrs["status"] == ItemStatus.REJECTED and not attrs["reason"].strip():
            raise serializers.ValidationError({"reason": "Give a reason for rejecting."})
        return attrs


# --- views ---------------------------------------------------------------------------------------------


def _image_with_items(image_id: int) -> Image:
    return (
        Image.objects.select_related("domain")
        .prefetch_related(
            Prefetch("captions", queryset=Caption.objects.exclude(status=ItemStatus.INVALID)),
            Prefetch("instructions", queryset=Instruction.objects.exclude(status=ItemStatus.INVALID)),
        )
        .get(pk=image_id)
    )


def _lease_conflict(exc: LeaseError) -> Response:
    body = {"detail": str(exc), "code": "lease_held" if isinstance(exc, LeaseHeld) else "not_reviewable"}
    return Response(body, status=status.HTTP_409_CONFLICT)


class ReviewImageViewSet(viewsets.GenericViewSet):
    """The queue: claim the next image, renew and release its lease; read an image with its drafts."""

    allowed_roles = (ANNOTATOR,)
    action_roles = {"retrieve": (ANNOTATOR, RESEARCHER)}
    serializer_class = ReviewImageSerializer

    def get_queryset(self):
        return Image.objects.all()

    @extend_schema(request=NextInput, responses={200: ClaimSerializer, 204: None})
    @action(detail=False, methods=["post"])
    def next(self, request):
        """Lease the next pending image of the chosen domains: 200 with the image (its drafts at
        `detail`), 204 when none waits. One database round trip beyond authentication."""
        data = NextInput(data=request.data)
        data.is_valid(raise_exception=True)
        claim = queue.claim_next(request.user, domain_ids=data.validated_data["domains"])
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ClaimSerializer(claim).data)

    @extend_schema(responses=ReviewImageSerializer)
    def retrieve(self, request, pk=None):
        """The image with its caption(s) and instructions (invalid model output left out)."""
        self._get_image_id(pk)
        return Response(ReviewImageSerializer(_image_with_items(int(pk)), context={"request": request}).data)

    @extend_schema(request=None, responses={200: dict, 409: dict})
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        """Extend the caller's lease (the page's heartbeat); 409 when someone else holds the image."""
        self._get_image_id(pk)
        try:
            until = queue.renew_lease(int(pk), request.user)
        except LeaseError as exc:
            return _lease_conflict(exc)
        return Response({"image": int(pk), "lease_expires_at": until})

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """Give the image back (skip). Idempotent."""
        self._get_image_id(pk)
        return Response({"image": int(pk), "review_status": queue.release_lease(int(pk), request.user)})

    def _get_image_id(self, pk) -> int:
        if not str(pk).isdigit() or not self.get_queryset().filter(pk=pk).exists():
            raise NotFound("No such image.")
        return int(pk)


class _ItemViewSet(viewsets.GenericViewSet):
    kind = ""
    allowed_roles = (ANNOTATOR,)
    action_roles = {"history": (ANNOTATOR, RESEARCHER)}
    throttle_scope = {"regenerate": "regeneration"}  # corpus.throttles.ActionThrottle

    def get_queryset(self):
        return corrections.ITEM_MODELS[self.kind].objects.select_related("image")

    @extend_schema(request=SaveInput, responses={200: dict, 400: dict, 409: dict})
    @action(detail=True, methods=["post"])
    def save(self, request, pk=None):
        """Save an edit and/or decision carrying the loaded version: 200 with the item, 409 with both
        versions when it is stale or when someone else holds the image, 400 with the broken rules."""
        item = self.get_object()
        data = SaveInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            result = corrections.save_item(
                self.kind,
                item.pk,
                by=request.user,
                expected_version=v["expected_version"],
                changes=v["changes"],
                status=v["status"],
                reason=v["reason"],
                note=v["note"],
                marks=[MarkInput(**m) for m in v["hallucinations"]],
            )
        except StaleVersion as exc:
            return Response(
                {
                    "detail": f"The item is at version {exc.current.version}, not {v['expected_version']}.",
                    "code": "stale_version",
                    "yours": {
                        "version": v["expected_version"],
                        "changes": v["changes"],
                        "status": v["status"],
                    },
                    "current": self.output_serializer(exc.current).data,
                },
                status=status.HTTP_409_CONFLICT,
            )
        except LeaseError as exc:
            return _lease_conflict(exc)
        except InstructionRuleError as exc:
            return Response(
                {"detail": str(exc), "violations": exc.as_dict()}, status=status.HTTP_400_BAD_REQUEST
            )
        except (InvalidTransition, MarkError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response({**self.output_serializer(result.item).data, "image_done": result.image_done})

    @extend_schema(responses=RevisionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The item's revisions, newest first (paginated)."""
        item = self.get_object()
        revisions = Revision.objects.filter(**{self.kind: item}).select_related("by").order_by("-version")
        page = self.paginate_queryset(revisions)
        return self.get_paginated_response(RevisionSerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: dict, 409: dict})
    @action(detail=True, methods=["post"])
    def regenerate(self, request, pk=None):
        """Queue a new draft of this item's stage: 202 with the generation job, or 409 with the reason."""
        item = self.get_object()
        try:
            job = corrections.request_regeneration(self.kind, item.pk, by=request.user)
        except RegenerationRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({"detail": "queued", "job": job.pk}, status=status.HTTP_202_ACCEPTED)


class ReviewCaptionViewSet(_ItemViewSet):
    kind = "caption"
    serializer_class = ReviewCaptionSerializer
    output_serializer = ReviewCaptionSerializer


class ReviewInstructionViewSet(_ItemViewSet):
    kind = "instruction"
    serializer_class = ReviewInstructionSerializer
    output_serializer = ReviewInstructionSerializer


def register(router) -> None:
    """Add this app's viewsets to the one /api/v1/ router."""
    router.register("review/images", ReviewImageViewSet, basename="review-image")
    router.register("review/captions", ReviewCaptionViewSet, basename="review-caption")
    router.register("review/instructions", ReviewInstructionViewSet, basename="review-instruction")


urlpatterns: list = []
