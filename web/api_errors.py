"""One shape for every API error, and the mapping that lets services just raise.

Every error the API answers is JSON `{"detail": "…", "errors": {"field": ["…"]}}` — `errors` only when
there are field errors (validation) — with the 4xx that fits. `exception_handler` (REST_FRAMEWORK
`EXCEPTION_HANDLER`) produces it for everything raised inside a DRF view; `web.error_pages` produces
the same body for what Django raises before DRF runs (an unknown /api/ URL, a body over the size limit
read by a middleware) and for 500s on /api/ paths.

Services raise domain errors; views need not catch them: `settings.API_ERROR_STATUS` maps exception
classes (dotted paths, most specific class wins) to a status code, and the handler answers that code
with `detail` = the exception's message. A domain error may carry `errors` (a dict of field → messages)
or `field` (the one field it is about) to fill `errors`, `api_extra` (a dict of further keys for the body:
a `code` naming the case, both versions of a stale edit) and `retry_after` (seconds, sent as Retry-After). Each app adds its classes in its own settings
block, e.g. `API_ERROR_STATUS["corpus.services.review_state.LeaseError"] = 409`. The defaults:

- `ProtectedError` / `RestrictedError` (deleting a row others still use) → 409, naming what uses it;
- `IntegrityError` → 409 for unique and foreign-key violations (a conflict with another row),
  400 for CHECK and NOT NULL violations (a value the model refuses);
- `DataError` (a value the column cannot hold: out of range, too long, NUL byte) → 400.
"""

from __future__ import annotations

import logging
from functools import cache

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from django.utils.module_loading import import_string
from rest_framework import exceptions, parsers, status
from rest_framework.serializers import as_serializer_error
from rest_framework.utils import json

log = logging.getLogger(__name__)

# Deeper JSON is refused at parse time: nothing the API takes nests more than a few levels, and deep
# nesting is how a request makes json (and any recursive code after it) raise RecursionError.
MAX_JSON_DEPTH = 32


def error_body(detail: str, errors: dict[str, list[str]] | None = None) -> dict:
    """The one error body of the API."""
    body: dict = {"detail": str(detail)}
    if errors:
        body["errors"] = errors
    return body


# --- exceptions DRF does not know -------------------------------------------------------------
class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the data."
    default_code = "conflict"


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def limit_error(exc: SuspiciousOperation) -> tuple[int, str]:
    """Status and message for Django's request-size limits (shared with the page handlers)."""
    if isinstance(exc, RequestDataTooBig):
        return 413, (
            f"The request body is larger than the limit ({_megabytes(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)} "
            "outside uploaded files). Send less data per request."
        )
    if isinstance(exc, TooManyFilesSent):
        return 413, (
            f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files in one request "
            "(DATA_UPLOAD_MAX_NUMBER_FILES). Send them in smaller batches, or as a .zip archive."
        )
    if isinstance(exc, TooManyFieldsSent):
        return 400, (
            f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields in one request. Send fewer fields."
        )
    return 400, "The request could not be understood."


# --- domain errors → status codes -------------------------------------------------------------
@cache
def _status_by_class() -> dict[type, int]:
    table: dict[type, int] = {}
    for path, code in getattr(settings, "API_ERROR_STATUS", {}).items():
        try:
            table[import_string(path)] = int(code)
        except ImportError:
            log.warning("API_ERROR_STATUS names %s, which cannot be imported", path)
    return table


def mapped_status(exc: BaseException) -> int | None:
    """The status API_ERROR_STATUS gives this exception (most specific class first), if any."""
    table = _status_by_class()
    for klass in type(exc).__mro__:
        if klass in table:
            return table[klass]
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _integrity_status(exc: IntegrityError, default: int) -> int:
    """400 for a value the model refuses (CHECK, NOT NULL), else the mapped default (409)."""
    sqlstate = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
    if sqlstate in ("23514", "23502"):  # PostgreSQL check_violation, not_null_violation
        return status.HTTP_400_BAD_REQUEST
    text = str(exc).upper()
    if "CHECK CONSTRAINT" in text or "NOT NULL CONSTRAINT" in text:  # SQLite
        return status.HTTP_400_BAD_REQUEST
    return default


def _protected_detail(exc: ProtectedError | RestrictedError) -> str:
    objects = list(getattr(exc, "protected_objects", None) or getattr(exc, "restricted_objects", None) or [])
    if not objects:
        return _first_line(exc)
    counts: dict[str, int] = {}
    for obj in objects:
        name = str(obj._meta.verbose_name_plural if len(objects) > 1 else obj._meta.verbose_name)
        counts[name] = counts.get(name, 0) + 1
    used_by = ", ".join(f"{n} {name}" for name, n in counts.items())
    return f"This cannot be deleted while other records use it ({used_by}). Remove or reassign those first."


def _domain_exception(exc: BaseException, code: int) -> exceptions.APIException:
    if isinstance(exc, ProtectedError | RestrictedError):
        detail = _protected_detail(exc)
    elif isinstance(exc, IntegrityError):
        code = _integrity_status(exc, code)
        detail = f"The data breaks a rule of the database: {_first_line(exc)}"
    elif isinstance(exc, DataError):
        detail = f"A value cannot be stored: {_first_line(exc)}"
    else:
        detail = str(exc) or type(exc).__name__
    api_exc = exceptions.APIException(detail)
    api_exc.status_code = code
    errors = getattr(exc, "errors", None)
    field = getattr(exc, "field", None)
    if isinstance(errors, dict):
        api_exc.field_errors = _flatten(errors)
    elif isinstance(field, str) and field:
        api_exc.field_errors = {field: [detail]}
    extra = getattr(exc, "api_extra", None)
    if isinstance(extra, dict):
        api_exc.extra = {k: v for k, v in extra.items() if k not in ("detail", "errors")}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        api_exc.wait = retry_after  # DRF's handler sends it as Retry-After
    return api_exc


def _translate(exc: BaseException) -> BaseException:
    """Django and domain exceptions → DRF APIExceptions; anything else is left alone (→ 500)."""
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound(*exc.args)
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, SuspiciousOperation):
        code, detail = limit_error(exc)
        return PayloadTooLarge(detail) if code == 413 else exceptions.ParseError(detail)
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(as_serializer_error(exc))
    code = mapped_status(exc)
    if code is not None:
        return _domain_exception(exc, code)
    return exc


# --- the body ---------------------------------------------------------------------------------
def _flatten(data, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → {"field": [...], "changes.text": [...], "options.2": [...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list | tuple):
        if all(not isinstance(item, dict | list | tuple) for item in data):
            out.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in data)
        else:
            for i, item in enumerate(data):
                if item:  # DRF reports a list of child errors with {} for the children that were fine
                    out.update(_flatten(item, f"{prefix}.{i}" if prefix else str(i)))
    elif data not in (None, ""):
        out.setdefault(prefix or "non_field_errors", []).append(str(data))
    return out


def _validation_detail(errors: dict[str, list[str]]) -> str:
    if not errors:
        return "Invalid input."
    if len(errors) == 1:
        field, messages = next(iter(errors.items()))
        message = messages[0] if messages else "invalid"
        return message if field == "non_field_errors" else f"{field}: {message}"
    fields = [f for f in errors if f != "non_field_errors"]
    return "Invalid input in: " + ", ".join(fields or list(errors))


NOT_AUTHENTICATED = (
    "Authentication credentials were not provided: send the header 'Authorization: Token <your token>' "
    "(an admin creates tokens in the Django admin) or log in."
)


def exception_handler(exc, context):
    """REST_FRAMEWORK EXCEPTION_HANDLER: every API error as {"detail", "errors"} with the right 4xx;
    DRF's own headers (WWW-Authenticate on 401, Retry-After on 429) are kept."""
    exc = _translate(exc)
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES (this module's parsers) when it is
    # first imported, so importing it at the top would make this module unimportable on its own.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not ours to answer: Django's handler500 logs it and answers a JSON 500
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        response.data = error_body(_validation_detail(errors), errors)
        return response
    detail = exc.detail if isinstance(exc.detail, str) else _validation_detail(_flatten(exc.detail))
    if isinstance(exc, exceptions.NotAuthenticated) and detail == exceptions.NotAuthenticated.default_detail:
        detail = NOT_AUTHENTICATED
    response.data = error_body(detail, getattr(exc, "field_errors", None))
    response.data.update(getattr(exc, "extra", None) or {})
    return response


# --- parsers ----------------------------------------------------------------------------------
def _read_limited(stream) -> bytes:
    """The body, refused with RequestDataTooBig (→ 413) past DATA_UPLOAD_MAX_MEMORY_SIZE — DRF's parsers
    read the raw stream, which Django's own limit does not cover."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream.read()
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
    return data


def _depth_exceeds(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the body size limit and a nesting limit: too large → 413, too deep or
    malformed → 400 (json itself raises RecursionError on very deep input)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = _read_limited(stream)
        try:
            parse_constant = json.strict_constant if self.strict else None
            data = json.loads(raw.decode(encoding), parse_constant=parse_constant)
        except RecursionError:
            raise exceptions.ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep.") from None
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise exceptions.ParseError(f"JSON parse error: {exc}") from None
        if _depth_exceeds(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep.")
        return data


class FormParser(parsers.FormParser):
    """DRF's form parser with the body size limit (413)."""

    def parse(self, stream, media_type=None, parser_context=None):
        from django.http import QueryDict

        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        return QueryDict(_read_limited(stream), encoding=encoding)
