"""Model endpoints: the two defaults from the environment, lookups, prices, the connection test, the
warnings a launch must confirm, deletion."""

from __future__ import annotations

import os
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from .. import llm, validators
from ..models import Endpoint, EndpointKind

DEFAULT_NAMES = {EndpointKind.VISION: "default-vision", EndpointKind.TEXT: "default-text"}
# A change of one of these makes the last connection test meaningless.
TESTED_FIELDS = ("base_url", "api_key_env", "model")
CLEARED_TEST = {
    "last_test_at": None,
    "last_test_ok": None,
    "last_test_status": None,
    "last_test_latency_ms": None,
    "last_test_error": "",
}


class UnknownEndpoint(LookupError):
    pass


class EndpointMisconfigured(ValueError):
    """The OPENAI_* settings describe an endpoint the rules refuse (the message says which and why)."""


class EndpointInUse(Exception):
    """An endpoint that jobs or units refer to cannot be deleted (their history needs it)."""


def ensure_default_endpoints() -> dict[str, Endpoint]:
    """Create or update the two default endpoints from settings (OPENAI_*). Idempotent. Run at every start
    (`manage.py sync_endpoints`, the worker's `worker_ready`), so a changed OPENAI_BASE_URL or model takes
    effect on restart. Raises EndpointMisconfigured if the settings break the endpoint rules.

    An admin may have made another endpoint the default of its kind; that choice is kept."""
    problem = validators.url_problem(settings.OPENAI_BASE_URL) or validators.key_env_problem(
        settings.OPENAI_API_KEY_ENV
    )
    if problem:
        raise EndpointMisconfigured(f"the default endpoints cannot be set up from OPENAI_*: {problem}")
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
            current = Endpoint.objects.select_for_update().filter(name=name).first()
            if current is not None and any(getattr(current, f) != fields[f] for f in TESTED_FIELDS):
                fields.update(CLEARED_TEST)
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
        try:
            endpoint = ensure_default_endpoints()[EndpointKind(kind)]
        except EndpointMisconfigured as e:
            raise UnknownEndpoint(str(e)) from e
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
    endpoint.is_default = True


def create_endpoint(**fields) -> Endpoint:
    """A new endpoint from validated fields (the API's serializer ran the model's validators). It becomes
    the default of its kind only through make_default."""
    return Endpoint.objects.create(**{**fields, "is_default": False})


def update_endpoint(endpoint: Endpoint, **changes) -> Endpoint:
    """Apply validated changes to an endpoint; a change of its URL, model or key variable forgets the
    last connection test (its result no longer applies), in the same save."""
    before = {f: getattr(endpoint, f) for f in TESTED_FIELDS}
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if any(before[f] != getattr(endpoint, f) for f in TESTED_FIELDS):
        for name, value in CLEARED_TEST.items():
            setattr(endpoint, name, value)
    endpoint.save()
    return endpoint


def key_is_set(endpoint: Endpoint) -> bool:
    """Whether the endpoint's key variable is set in this process (the value is never shown)."""
    return bool(os.environ.get(endpoint.api_key_env or ""))


def cost_of(endpoint: Endpoint, tokens_in: int, tokens_out: int) -> Decimal:
    cost = (
        Decimal(tokens_in) * endpoint.price_in_per_m + Decimal(tokens_out) * endpoint.price_out_per_m
    ) / Decimal(1_000_000)
    return cost.quantize(Decimal("0.000001"))


def record_test(endpoint: Endpoint) -> llm.ConnectionReport:
    """Make one cheap call to the endpoint and store the result on it (last_test_*). Not idempotent in
    effect (each call is a request to the model server), harmless to repeat."""
    timeout = min(endpoint.timeout, settings.GENERATION_TEST_TIMEOUT)
    report = llm.probe_connection(
        base_url=endpoint.base_url, api_key_env=endpoint.api_key_env, model=endpoint.model, timeout=timeout
    )
    Endpoint.objects.filter(pk=endpoint.pk).update(
        last_test_at=timezone.now(),
        last_test_ok=report.ok,
        last_test_status=report.status,
        last_test_latency_ms=report.latency_ms,
        last_test_error=report.error[:2000],
    )
    endpoint.refresh_from_db()
    return report


def launch_warnings(endpoint: Endpoint) -> list[str]:
    """What a person must confirm before launching a job on this endpoint: its key variable is not set
    here, or its last connection test failed. Empty when nothing is known to be wrong."""
    warnings = []
    if not key_is_set(endpoint):
        warnings.append(
            f"the key variable {endpoint.api_key_env} of endpoint {endpoint.name} is not set "
            "(the model server will likely refuse every call)"
        )
    if endpoint.last_test_ok is False:
        when = (
            timezone.localtime(endpoint.last_test_at).strftime("%Y-%m-%d %H:%M")
            if endpoint.last_test_at
            else "?"
        )
        warnings.append(
            f"the last connection test of endpoint {endpoint.name} failed ({when}): "
            f"{endpoint.last_test_error or 'HTTP ' + str(endpoint.last_test_status)}"
        )
    return warnings


def delete_endpoint(endpoint: Endpoint) -> None:
    """Delete an endpoint no job used. Raises EndpointInUse (with how many jobs) otherwise."""
    try:
        endpoint.delete()
    except ProtectedError as e:
        jobs = endpoint.jobs.count()
        raise EndpointInUse(
            f"endpoint {endpoint.name} is used by {jobs} job(s) and their units; their history needs it. "
            "Make another endpoint the default instead, or leave this one unused."
        ) from e
