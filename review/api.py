"""REST endpoints of the review app, mounted under /api/v1/: next item, take / reopen one image by
intent, lease renew and release, save with version (409 on a stale version or a lost lease), history,
regeneration (202). Every status code an endpoint answers is declared in its schema.

Views parse input, call one service or selector and serialise. Domain errors pass through: the review
block of API_ERROR_STATUS in settings maps them (StaleVersion and LeaseError 409 with a `code`,
InstructionRuleError / InvalidTransition / MarkError 400 naming the field, NoSuchItem 404, the
regeneration refusals 403 / 429 / 409)."""

import logging

from django.core.files.storage import default_storage
from django.db import OperationalError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response

from accounts.roles import ANNOTATOR, RESEARCHER
from corpus.api import BAD_REQUEST, NOT_FOUND
from corpus.models import Caption, Image, Instruction, ItemStatus, Revision
from corpus.serializers import ID_MAX, INT_MAX, TextField

from . import selectors
from .models import HallucinationCategory
from .services import corrections, queue
from .services.corrections import MarkInput

log = logging.getLogger(__name__)

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
    # Null for the system's own revisions (a model draft, sample data) and for deleted users.
    by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="who made the change (username)"
    )

    class Meta:
        model = Revision
        fields = ["version", "action", "by", "at", "before", "after", "note"]


class LeaseSerializer(serializers.Serializer):
    image = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField()


class ReleaseSerializer(serializers.Serializer):
    image = serializers.IntegerField()
    review_status = serializers.CharField()


class LeaseConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(
        help_text="lease_held: someone else holds the image; not_held: the caller does not hold it (take it "
        "first); not_reviewable: nothing to review, or reviewed (reopen it)."
    )


class SaveConflictSerializer(serializers.Serializer):
    """409 of a save: the item changed since it was loaded (both versions), or the lease is not the
    caller's (detail and code only)."""

    detail = serializers.CharField()
    code = serializers.CharField(help_text="stale_version, lease_held or not_held")
    yours = serializers.DictField(required=False, help_text="what was sent: version, changes, status")
    current = serializers.DictField(required=False, help_text="the item as it is now")


class DatabaseBusySerializer(serializers.Serializer):
    detail = serializers.CharField()


LEASE_CONFLICT = OpenApiResponse(
    LeaseConflictSerializer, description="Someone else holds the image, or the caller does not."
)
DATABASE_BUSY = OpenApiResponse(
    DatabaseBusySerializer,
    description="The database was busy or unavailable; nothing was written. Retry (Retry-After).",
)


class DatabaseBusy(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database was busy or unavailable; nothing was written. Retry in a moment."
    default_code = "database_busy"
    wait = 1  # DRF's exception handler sends it as Retry-After


# --- input ---------------------------------------------------------------------------------------------


class NextInput(serializers.Serializer):
    domains = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX),
        required=False,
        default=list,
        max_length=1000,
    )


class MarkInputSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=HallucinationCategory.choices)
    field = TextField(required=False, default="", allow_blank=True, max_length=20)
    span_start = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=INT_MAX
    )
    span_end = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=INT_MAX
    )
    note = TextField(required=False, default="", allow_blank=True, max_length=1000)


class _Changes(serializers.Serializer):
    """The fields an edit changes. Keys the item does not have are refused by name (nothing is written);
    every message names its key, under `changes`."""

    item = ""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise ValidationError([f"Must be an object, not {type(data).__name__}."])
        unknown = [str(key)[:50] for key in data if key not in self.fields]
        if unknown:
            takes = ", ".join(self.fields)
            raise ValidationError(
                [f"unknown key {key!r} ({self.item}'s changes take {takes})" for key in unknown]
            )
        try:
            return super().to_internal_value(data)
        except ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"changes": exc.detail}
            raise ValidationError(
                [f"{key}: {message}" for key, messages in detail.items() for message in _flat(messages)]
            ) from None


def _flat(messages):
    if isinstance(messages, dict):
        return [f"{k}: {m}" for k, v in messages.items() for m in _flat(v)]
    if isinstance(messages, list):
        return [m for v in messages for m in _flat(v)]
    return [str(messages)]


class CaptionChanges(_Changes):
    item = "a caption"
    text = TextField(required=False, allow_blank=True)


class InstructionChanges(_Changes):
    item = "an instruction"
    type = TextField(required=False, allow_blank=True, max_length=20)
    question = TextField(required=False, allow_blank=True)
    options = serializers.ListField(child=TextField(allow_blank=True), required=False, max_length=20)
    answer = TextField(required=False, allow_blank=True)


# The decisions a save may carry (named SaveStatusEnum in the schema, see settings.py).
SAVE_STATUS_CHOICES = [
    (s.value, s.label) for s in (ItemStatus.ACCEPTED, ItemStatus.REJECTED, ItemStatus.DRAFT)
]


class SaveInput(serializers.Serializer):
    expected_version = serializers.IntegerField(min_value=1, max_value=INT_MAX)
    status = serializers.ChoiceField(
        choices=SAVE_STATUS_CHOICES,
        required=False,
        allow_null=True,
        default=None,
    )
    reason = TextField(required=False, default="", allow_blank=True, max_length=2000)
    note = TextField(required=False, default="", allow_blank=True, max_length=2000)
    hallucinations = MarkInputSerializer(many=True, required=False, default=list, max_length=100)

    def validate(self, attrs):
        if attrs["status"] == ItemStatus.REJECTED and not attrs["reason"].strip():
            raise serializers.ValidationError({"reason": "Give a reason for rejecting."})
        return attrs


class CaptionSaveInput(SaveInput):
    changes = CaptionChanges(required=False)


class InstructionSaveInput(SaveInput):
    changes = InstructionChanges(required=False)


# --- views ---------------------------------------------------------------------------------------------


class _ReviewViewSet(viewsets.GenericViewSet):
    """What the review endpoints share: ids only in the URL, the safe JSON parser, and a database that
    is busy or gone answered as 503 with Retry-After (nothing was written: every action is one
    transaction) instead of a 500."""

    lookup_value_regex = "[0-9]{1,19}"

    def handle_exception(self, exc):
        if isinstance(exc, OperationalError):
            log.warning("database error in %s: %s", self.request.path, exc)
            exc = DatabaseBusy()
        return super().handle_exception(exc)


def _lease_response(image_id: int, until) -> Response:
    return Response(LeaseSerializer({"image": image_id, "lease_expires_at": until}).data)


class ReviewImageViewSet(_ReviewViewSet):
    """The queue: claim the next image or take / reopen one by intent, renew and release its lease; read
    an image with its drafts."""

    allowed_roles = (ANNOTATOR,)
    action_roles = {"retrieve": (ANNOTATOR, RESEARCHER)}
    serializer_class = ReviewImageSerializer

    def get_queryset(self):
        return Image.objects.all()

    @extend_schema(
        request=NextInput,
        responses={200: ClaimSerializer, 204: None, 400: BAD_REQUEST, 503: DATABASE_BUSY},
    )
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

    @extend_schema(responses={200: ReviewImageSerializer, 404: NOT_FOUND, 503: DATABASE_BUSY})
    def retrieve(self, request, pk=None):
        """The image with its caption(s) and instructions (invalid model output left out). Reads only."""
        image_id = self._get_image_id(pk)
        image = selectors.image_with_items(image_id)
        return Response(ReviewImageSerializer(image, context={"request": request}).data)

    @extend_schema(
        request=None,
        responses={200: LeaseSerializer, 404: NOT_FOUND, 409: LEASE_CONFLICT, 503: DATABASE_BUSY},
    )
    @action(detail=True, methods=["post"])
    def take(self, request, pk=None):
        """Take this image for review by intent: a pending image is claimed, one whose holder's lease
        expired is taken over (events written). 409 when someone else holds it, when it is reviewed
        (reopen it) or has nothing to review."""
        image_id = self._get_image_id(pk)
        return _lease_response(image_id, queue.take_image(image_id, request.user))

    @extend_schema(
        request=None,
        responses={200: LeaseSerializer, 404: NOT_FOUND, 409: LEASE_CONFLICT, 503: DATABASE_BUSY},
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        """Reopen a reviewed image to change it (a "reopened" event is written; a pending one is simply
        taken). 409 when someone else holds it or it has nothing to review."""
        image_id = self._get_image_id(pk)
        return _lease_response(image_id, queue.take_image(image_id, request.user, reopen=True))

    @extend_schema(
        request=None,
        responses={200: LeaseSerializer, 404: NOT_FOUND, 409: LEASE_CONFLICT, 503: DATABASE_BUSY},
    )
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        """Extend the caller's lease (the page's heartbeat). A holder whose lease lapsed gets the image
        back when nobody took it; 409 when someone else holds it or the caller never held it (`code`
        lease_held / not_held) — a renew never takes an image."""
        image_id = self._get_image_id(pk)
        return _lease_response(image_id, queue.renew_lease(image_id, request.user))

    @extend_schema(request=None, responses={200: ReleaseSerializer, 404: NOT_FOUND, 503: DATABASE_BUSY})
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """Give the image back (skip). Idempotent: releasing an image one does not hold changes nothing."""
        image_id = self._get_image_id(pk)
        review_status = queue.release_lease(image_id, request.user)
        return Response(ReleaseSerializer({"image": image_id, "review_status": review_status}).data)

    def _get_image_id(self, pk) -> int:
        image_id = int(pk) if str(pk).isascii() and str(pk).isdigit() else 0
        if not 0 < image_id <= ID_MAX or not self.get_queryset().filter(pk=image_id).exists():
            raise NotFound("No such image.")
        return image_id


class _ItemViewSet(_ReviewViewSet):
    kind = ""
    save_input = SaveInput
    allowed_roles = (ANNOTATOR,)
    action_roles = {"history": (ANNOTATOR, RESEARCHER)}
    throttle_scope = {"regenerate": "regeneration"}  # accounts.throttles.ActionThrottle

    def get_queryset(self):
        return selectors.ITEM_MODELS[self.kind].objects.select_related("image")

    @action(detail=True, methods=["post"])
    def save(self, request, pk=None):
        """Save an edit and/or decision carrying the loaded version: 200 with the item; 409 with both
        versions when it is stale, or when the caller does not hold the image (someone else does, or
        they never took it); 400 naming each refused field (a broken type rule, an unknown key in
        `changes`, a value that is no string, a control character, a number out of range) — nothing
        is written then."""
        data = self.save_input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        # One read of the item, inside the service (an unknown id is its NoSuchItem: 404).
        result = corrections.save_item(
            self.kind,
            self._item_id(pk),
            by=request.user,
            expected_version=v["expected_version"],
            changes=v.get("changes", {}),
            status=v["status"],
            reason=v["reason"],
            note=v["note"],
            marks=[MarkInput(**m) for m in v["hallucinations"]],
        )
        return Response({**self.output_serializer(result.item).data, "image_done": result.image_done})

    def _item_id(self, pk) -> int:
        item_id = int(pk) if str(pk).isascii() and str(pk).isdigit() else 0
        if not 0 < item_id <= ID_MAX:
            raise NotFound("No such item.")
        return item_id

    @extend_schema(responses={200: RevisionSerializer(many=True), 404: NOT_FOUND, 503: DATABASE_BUSY})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The item's revisions, newest first (paginated)."""
        item = self.get_object()
        page = self.paginate_queryset(selectors.revisions_of(self.kind, item))
        return self.get_paginated_response(RevisionSerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: dict, 403: dict, 409: dict, 429: dict})
    @action(detail=True, methods=["post"])
    def regenerate(self, request, pk=None):
        """Queue a new draft of this item's stage: 202 with the generation job; 403 unless the caller holds
        the image's lease (or is an admin); 429 with Retry-After past the hourly quota; 409 with the
        engine's reason."""
        item = self.get_object()
        job = corrections.request_regeneration(self.kind, item.pk, by=request.user)
        return Response({"detail": "queued", "job": job.pk}, status=status.HTTP_202_ACCEPTED)


def _save_schema(save_input, output):
    class SavedSerializer(output):
        image_done = serializers.BooleanField(help_text="the save decided the image's last draft")

        class Meta(output.Meta):
            fields = [*output.Meta.fields, "image_done"]

    SavedSerializer.__name__ = f"Saved{output.__name__.removeprefix('Review')}"
    return extend_schema(
        request=save_input,
        responses={
            200: SavedSerializer,
            400: BAD_REQUEST,
            404: NOT_FOUND,
            409: OpenApiResponse(
                SaveConflictSerializer,
                description="A stale version (both versions), or not the caller's lease.",
            ),
            503: DATABASE_BUSY,
        },
    )


class ReviewCaptionViewSet(_ItemViewSet):
    kind = "caption"
    serializer_class = ReviewCaptionSerializer
    output_serializer = ReviewCaptionSerializer
    save_input = CaptionSaveInput

    @_save_schema(CaptionSaveInput, ReviewCaptionSerializer)
    @action(detail=True, methods=["post"])
    def save(self, request, pk=None):
        return super().save(request, pk)


class ReviewInstructionViewSet(_ItemViewSet):
    kind = "instruction"
    serializer_class = ReviewInstructionSerializer
    output_serializer = ReviewInstructionSerializer
    save_input = InstructionSaveInput

    @_save_schema(InstructionSaveInput, ReviewInstructionSerializer)
    @action(detail=True, methods=["post"])
    def save(self, request, pk=None):
        return super().save(request, pk)


def register(router) -> None:
    """Add this app's viewsets to the one /api/v1/ router."""
    router.register("review/images", ReviewImageViewSet, basename="review-image")
    router.register("review/captions", ReviewCaptionViewSet, basename="review-caption")
    router.register("review/instructions", ReviewInstructionViewSet, basename="review-instruction")


urlpatterns: list = []
