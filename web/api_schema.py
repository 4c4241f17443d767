"""The OpenAPI schema documents every status an endpoint can answer, not only its successes.

`StudioAutoSchema` (REST_FRAMEWORK `DEFAULT_SCHEMA_CLASS`) adds to each operation the generic errors
that the platform's plumbing can answer for it, with the one error body (component `Error`, see
`web.api_errors`), unless the view already documents that code itself:

| code | when | from |
|---|---|---|
| 400 | writes; reads with query parameters (filters, pagination) | validation, malformed JSON, filters |
| 401 | every operation | no or bad credentials (`WWW-Authenticate: Token`) |
| 403 | every operation | the role check (accounts.roles) |
| 404 | paths with an id; paginated lists (a page past the end) | lookups, pagination |
| 409 | writes | a domain conflict or a row still in use (`API_ERROR_STATUS`) |
| 413 | writes | a body over DATA_UPLOAD_MAX_MEMORY_SIZE, more files than DATA_UPLOAD_MAX_NUMBER_FILES |
| 415 | writes | a content type the endpoint does not parse |
| 429 | every operation | the throttles (accounts.throttles), with `Retry-After` |
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
BODY_METHODS = ("POST", "PUT", "PATCH")


class ErrorSerializer(serializers.Serializer):
    """Every API error: a sentence for people, and the field errors of a validation error."""

    detail = serializers.CharField(help_text="What went wrong, in one sentence.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='Validation errors by field ("changes.text", "options.2" for nested ones).',
    )


DESCRIPTIONS = {
    "400": "The input is invalid (`errors` names each field) or the body is not valid JSON.",
    "401": "No credentials or bad ones: send `Authorization: Token <key>` or a session cookie.",
    "403": "Your role does not allow this.",
    "404": "No such object (or a page past the end of the list).",
    "409": "The request conflicts with the current state (for example the object is still in use).",
    "413": "The request body or upload is over the size or file-count limit.",
    "415": "The content type of the body is not one this endpoint reads.",
    "429": "Too many requests: wait `Retry-After` seconds.",
}
HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "The scheme to use: `Token`."}},
    "429": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
}


class StudioAutoSchema(AutoSchema):
    def generic_error_codes(self) -> list[str]:
        method = self.method
        has_query = any(p.get("in") == "query" for p in self._get_parameters())
        has_path_params = "{" in self.path
        codes = ["401", "403", "429"]
        if method in BODY_METHODS or has_query:
            codes.append("400")
        if has_path_params or (method == "GET" and self._is_list_view() and self._get_paginator()):
            codes.append("404")
        if method in WRITE_METHODS:
            codes.append("409")
        if method in BODY_METHODS:
            codes += ["413", "415"]
        return sorted(codes)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self.generic_error_codes():
            if code in responses:
                continue  # the view documents this code itself
            response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
            response["description"] = DESCRIPTIONS[code]
            if code in HEADERS:
                response["headers"] = HEADERS[code]
            responses[code] = response
        return dict(sorted(responses.items()))
