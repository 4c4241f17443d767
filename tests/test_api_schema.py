"""The OpenAPI schema covers every app's endpoints and drf-spectacular has nothing to warn about (a
warning means a component is ambiguous or missing from the published schema)."""

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_generates_without_warnings_and_lists_every_app(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = out.read_text()
    for path in (
        "/api/v1/images/",
        "/api/v1/instructions/",
        "/api/v1/review/images/next/",
        "/api/v1/exports/",
    ):
        assert f"{path}:" in schema
