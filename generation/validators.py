"""Rules for what an endpoint may point at and which variable it may read, and for text input.

An endpoint is configuration that makes a worker send a secret (the key named by `api_key_env`) to a URL
(`base_url`). Without rules, an admin form could make it send `SECRET_KEY` or `DATABASE_URL` to any host,
or reach the cloud metadata service from inside the network. So:

- `api_key_env` must match GENERATION_API_KEY_ENV_PATTERN (default: names ending in `_API_KEY`), and the
  server's own secrets are refused whatever the pattern says;
- `base_url` must be http(s); link-local and metadata addresses are always refused; loopback and private
  ranges only when GENERATION_ALLOW_PRIVATE_ENDPOINTS is on (a local vLLM is a real use).

The model validators check what can be checked without the network (the literal address, the name);
`check_call_target` repeats everything at call time and resolves the host name, so a row written before
the rules, or a public name whose DNS points at 169.254.169.254, cannot leak a key either.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

# Variables that hold the server's own secrets: never a model key, whatever the allow-list pattern says.
SERVER_SECRETS = frozenset(
    {
        "SECRET_KEY",
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "POSTGRES_PASSWORD",
        "PGPASSWORD",
        "AWS_SECRET_ACCESS_KEY",
    }
)
# Host names of cloud metadata services (their addresses are refused below as well).
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
# Metadata addresses outside 169.254.0.0/16: AWS's IPv6 one (inside fc00::/7, so it must be named),
# Alibaba Cloud's, and Oracle/Azure's well-known ones are link-local already.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)

# C0 controls, DEL and C1 controls; tab, newline and carriage return are allowed only in multi-line text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class EndpointNotAllowed(ValueError):
    """An endpoint's URL or key variable breaks the rules above (the message says which and why)."""


def refuse_control_characters(value: str) -> None:
    """Validator for multi-line text: no NUL or other control characters (tab and newlines are fine)."""
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValidationError(
            "must not contain NUL bytes or other control characters", code="control_characters"
        )


def refuse_control_characters_single_line(value: str) -> None:
    """Validator for one-line text: no control characters at all, line breaks and tabs included."""
    if isinstance(value, str) and _CONTROL_SINGLE_LINE.search(value):
        raise ValidationError(
            "must not contain NUL bytes, line breaks or other control characters", code="control_characters"
        )


def has_control_characters(value: str, *, multiline: bool = True) -> bool:
    return bool((_CONTROL if multiline else _CONTROL_SINGLE_LINE).search(value or ""))


# --- the key variable ---------------------------------------------------------------------------


def key_env_problem(name: str) -> str | None:
    """Why `name` may not be an endpoint's key variable, or None if it may."""
    name = name or ""
    if name.upper() in SERVER_SECRETS:
        return f"{name} holds a server secret, never a model key"
    pattern = settings.GENERATION_API_KEY_ENV_PATTERN
    if not re.fullmatch(pattern, name):
        return f"'{name}' is not an allowed key variable (it must match {pattern}, e.g. OPENAI_API_KEY)"
    return None


def validate_api_key_env(value: str) -> None:
    problem = key_env_problem(value)
    if problem:
        raise ValidationError(problem, code="key_variable_not_allowed")


# --- the URL ------------------------------------------------------------------------------------


def _address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, shown: str) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        return f"{shown} is a link-local or cloud metadata address: never allowed"
    if ip.is_multicast or ip.is_unspecified:
        return f"{shown} is not a unicast address"
    if ip.is_loopback or ip.is_private:  # ::1 counts as reserved too: decide on this first
        if not settings.GENERATION_ALLOW_PRIVATE_ENDPOINTS:
            return (
                f"{shown} is a loopback or private address; set GENERATION_ALLOW_PRIVATE_ENDPOINTS=true to "
                "allow model servers on your own network"
            )
        return None
    if ip.is_reserved:
        return f"{shown} is a reserved address"
    return None


def _split(url: str) -> tuple[str, str]:
    """(scheme, host) of an endpoint URL, or raises EndpointNotAllowed."""
    try:
        parts = urlsplit(url or "")
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as e:
        raise EndpointNotAllowed(f"'{url}' is not a valid URL: {e}") from e
    if parts.scheme not in ("http", "https"):
        raise EndpointNotAllowed(f"the base URL must start with http:// or https:// (got '{url}')")
    if not host:
        raise EndpointNotAllowed(f"the base URL '{url}' has no host")
    return parts.scheme, host.rstrip(".").lower()


def url_problem(url: str) -> str | None:
    """Why `url` may not be an endpoint's base URL, from the URL alone (no DNS), or None."""
    try:
        _, host = _split(url)
    except EndpointNotAllowed as e:
        return str(e)
    if host in METADATA_HOSTS:
        return f"{host} is a cloud metadata service: never allowed"
    if host == "localhost" or host.endswith(".localhost"):
        return _address_problem(ipaddress.ip_address("127.0.0.1"), host)
    try:
        ip = ipaddress.ip_address(unicodedata.normalize("NFKC", host).strip("[]"))
    except ValueError:
        return None  # a name: resolved and checked at call time
    return _address_problem(ip, host)


def validate_base_url(value: str) -> None:
    problem = url_problem(value)
    if problem:
        raise ValidationError(problem, code="url_not_allowed")


def check_call_target(base_url: str, api_key_env: str) -> None:
    """Everything above, again, right before a call, with the host name resolved: raises
    EndpointNotAllowed. Every address the name resolves to must pass (the client may use any of them)."""
    problem = key_env_problem(api_key_env) or url_problem(base_url)
    if problem:
        raise EndpointNotAllowed(f"endpoint refused: {problem}")
    scheme, host = _split(base_url)
    try:
        ipaddress.ip_address(host.strip("[]"))
        return  # a literal address, checked above
    except ValueError:
        pass
    port = urlsplit(base_url).port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return  # unresolvable: the client's own connection error says so (and nothing is sent)
    for info in infos:
        address = info[4][0].split("%")[0]
        problem = _address_problem(ipaddress.ip_address(address), f"{host} ({address})")
        if problem:
            raise EndpointNotAllowed(f"endpoint refused: {problem}")
