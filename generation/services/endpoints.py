"""Model endpoints: the two defaults from the environment, lookups, prices."""

from __future__ import annotations

import os
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from ..models import Endpoint, EndpointKind

DEFAULT_NAMES = {EndpointKind.VISION: "default-vision", EndpointKind.TEXT: "default-text"}


class UnknownEndpoint(LookupError):
    pass


def ensure_default_endpoints() -> dict[str, Endpoint]:
    """Create or update the two default endpoints from settings (OPENAI_*). Idempotent.

    An admin may have made another endpoint the default of its kind; that choice is kept."""
    models = {
        EndpointKind.VISION: settings.OPENAI_VISION_MODEL,
        EndpointKind.TEXT: settings.OPENAI_TEXT_MODEL,
    }
    prices = {
        EndpointKind.VISION: settings.OPENAI_VISION_PRICES,
        EndpointKind.TEXT: settings.OPENAI_TEXT_PRICES,
    }
    out = {}
    with transaction.atomic():
        for kind, name in DEFAULT_NAMES.items():
            has_default = Endpoint.objects.filter(kind=kind, is_default=True).exclude(name=name).exists()
            fields = {
                "kind": kind,
                "base_url": settings.OPENAI_BASE_URL,
                "api_key_env": settings.OPENAI_API_KEY_ENV,
                "model": models[kind],
                "price_in_per_m": Decimal(prices[kind][0]),
                "price_out_per_m": Decimal(prices[kind][1]),
                "rpm_limit": settings.OPENAI_RPM_LIMIT,
                "tpm_limit": settings.OPENAI_TPM_LIMIT,
                "max_concurrency": settings.OPENAI_MAX_CONCURRENCY,
                "timeout": settings.OPENAI_TIMEOUT,
                "supports_json_schema": settings.OPENAI_SUPPORTS_JSON_SCHEMA,
            }
            # is_default only on creation: an admin's later choice of default is kept.
            endpoint, _ = Endpoint.objects.update_or_create(
                name=name, defaults=fields, create_defaults={**fields, "is_default": not has_default}
            )
            out[kind] = endpoint
    return out


def resolve_endpoint(kind: str, name: str | None = None) -> Endpoint:
    """The endpoint called `name` (which must be of `kind`), or the default of that kind."""
    if name:
        endpoint = Endpoint.objects.filter(name=name).first()
        if endpoint is None:
            known = ", ".join(Endpoint.objects.values_list("name", flat=True)) or "none"
            raise UnknownEndpoint(f"no endpoint named '{name}' (known: {known})")
        if endpoint.kind != kind:
            raise UnknownEndpoint(f"endpoint '{name}' is a {endpoint.kind} endpoint, this stage needs {kind}")
        return endpoint
    endpoint = Endpoint.objects.filter(kind=kind, is_default=True).first()
    if endpoint is None:
        endpoint = ensure_default_endpoints()[EndpointKind(kind)]
        endpoint.refresh_from_db()
        if not endpoint.is_default:
            endpoint = Endpoint.objects.get(kind=kind, is_default=True)
    return endpoint


def make_default(endpoint: Endpoint) -> None:
    """Make `endpoint` the default of its kind (one default per kind). Idempotent."""
    with transaction.atomic():
        Endpoint.objects.filter(kind=endpoint.kind, is_default=True).exclude(pk=endpoint.pk).update(
            is_default=False
        )
        Endpoint.objects.filter(pk=endpoint.pk).update(is_default=True)


def key_is_set(endpoint: Endpoint) -> bool:
    """Whether the endpoint's key variable is set in this process (the value is never shown)."""
    return bool(os.environ.get(endpoint.api_key_env or ""))


def cost_of(endpoint: Endpoint, tokens_in: int, tokens_out: int) -> Decimal:
    cost = (
        Decimal(tokens_in) * endpoint.price_in_per_m + Decimal(tokens_out) * endpoint.price_out_per_m
    ) / Decimal(1_000_000)
    return cost.quantize(Decimal("0.000001"))
