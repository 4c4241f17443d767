"""python manage.py export_dataset: builds synchronously and prints version, path and sha256."""

import hashlib
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from exports.models import ExportSpec

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("export_dataset", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def printed(output: str) -> dict:
    return dict(
        line.split(": ", 1) for line in output.splitlines() if ": " in line and not line.startswith("inst")
    )


def test_command_creates_the_export_builds_it_and_prints_version_path_and_sha256(corpus):
    out = printed(
        run(
            "--name",
            "cli",
            "--format",
            "llava",
            "--format",
            "parquet",
            "--domain",
            "animals",
            "--split",
            "0.5",
        )
    )
    assert out["version"] == "cli v1"
    path = Path(out["path"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == out["sha256"]
    spec = ExportSpec.objects.get(name="cli")
    assert spec.formats == ["llava", "parquet"] and spec.selection["domains"] == ["animals"]
    assert spec.train_ratio == 0.5
    version = spec.versions.get()
    assert version.sha256 == out["sha256"] and version.counts["by_domain"] == {"animals": 12}


def test_command_rebuilds_an_existing_export_as_the_next_version_with_the_same_sha256(corpus):
    first = printed(run("--name", "cli", "--format", "sharegpt"))
    second = printed(run("--name", "cli"))
    assert second["version"] == "cli v2"
    assert second["sha256"] == first["sha256"]


def test_command_refuses_options_that_disagree_with_the_existing_export(corpus):
    run("--name", "cli", "--format", "llava")
    with pytest.raises(CommandError, match="different formats"):
        run("--name", "cli", "--format", "parquet")
    with pytest.raises(CommandError, match="different selection"):
        run("--name", "cli", "--domain", "charts")


def test_command_reports_bad_input_clearly(corpus):
    with pytest.raises(CommandError, match="no such domain"):
        run("--name", "cli", "--format", "llava", "--domain", "nowhere")
    assert not ExportSpec.objects.exists()
