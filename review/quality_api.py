"""The quality loop's API: the verifier report with the cost of an accepted instruction (GET …/report/), and review
by exception switched on or off per domain (POST; refused with 409 while the floors are not met)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.roles import ADMIN, ANNOTATOR
from corpus.models import Domain

from .services import auto_accept, flag_order, quality_stats


class SwitchSerializer(serializers.Serializer):
    on = serializers.BooleanField()


class QualityReportSerializer(serializers.Serializer):
    """What GET answers (described in docs/quality.md; the parts are plain JSON objects)."""

    flags = serializers.DictField(help_text="Flags by check, and by check × domain, type and model.")
    verifier = serializers.DictField(help_text="Precision and recall of `unsupported` against people.")
    auto_accept = serializers.ListField(child=serializers.DictField(), help_text="Each domain's policy.")
    cost = serializers.DictField(help_text="The cost of an accepted instruction, its inputs and the ratio.")


class FlaggedInput(serializers.Serializer):
    domains = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        default=list,
        max_length=1000,
    )


class FlaggedClaimSerializer(serializers.Serializer):
    image = serializers.IntegerField()


class QualityViewSet(viewsets.GenericViewSet):
    """GET /api/v1/review/quality/report/: the verifier against people, auto-accept per domain, flags and the
    cost ledger. POST /api/v1/review/quality/{slug}/auto-accept/ {"on": true|false}."""

    allowed_roles = (ADMIN,)
    action_roles = {"next_flagged": (ANNOTATOR,)}
    lookup_field = "slug"
    lookup_value_regex = "[-a-zA-Z0-9_]{1,100}"
    serializer_class = SwitchSerializer
    queryset = Domain.objects.none()  # the schema's path parameter type; the actions read by slug

    @extend_schema(request=FlaggedInput, responses={200: FlaggedClaimSerializer, 204: None})
    @action(detail=False, methods=["post"], url_path="next-flagged")
    def next_flagged(self, request):
        """The queue in "most flags first" order: lease the pending image of the domains (all active
        ones if none) whose drafts carry the most automatic-check flags; 204 when none waits."""
        data = FlaggedInput(data=request.data)
        data.is_valid(raise_exception=True)
        image_id = flag_order.claim_most_flagged(request.user, domain_ids=data.validated_data["domains"])
        if image_id is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response({"image": image_id})

    @extend_schema(responses=QualityReportSerializer)
    @action(detail=False, methods=["get"])
    def report(self, request):
        return Response(quality_stats.statistics(for_api=True))

    @extend_schema(
        request=SwitchSerializer,
        responses={
            202: inline_serializer(
                "AutoAcceptState", {"domain": serializers.CharField(), "status": serializers.CharField()}
            )
        },
    )
    @action(detail=True, methods=["post"], url_path="auto-accept")
    def auto_accept(self, request, slug=None):
        domain = get_object_or_404(Domain, slug=slug)
        data = SwitchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["on"]:
            auto_accept.switch_on(domain, by=request.user)  # AutoAcceptRefused → 409 (API_ERROR_STATUS)
        else:
            auto_accept.switch_off(domain, by=request.user)
        policy = auto_accept.policy_of(domain)
        return Response({"domain": domain.slug, "status": policy.status}, status=status.HTTP_202_ACCEPTED)


def register(router) -> None:
    router.register("review/quality", QualityViewSet, basename="review-quality")
