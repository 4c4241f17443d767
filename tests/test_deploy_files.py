"""docker-compose.yml and deploy/nginx.conf agree on where stored files live and who may read them: the
proxy mounts media and exports read-only (never upload staging), serves them only from `internal`
locations that web's *_ACCEL_REDIRECT settings name, and web and worker share the staging volume.
(tests/test_nginx_proxy.py runs the nginx file for real.)"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def mounts(compose, service) -> dict[str, str]:
    return {v.split(":")[0]: v.split(":", 1)[1] for v in compose["services"][service].get("volumes", [])}


def internal_locations() -> dict[str, str]:
    """location prefix → alias, for every `internal` location of the shipped config."""
    found = {}
    for prefix, body in re.findall(r"location\s+(\S+)\s*\{(.*?)\n    \}", NGINX, re.S):
        if re.search(r"^\s*internal;", body, re.M):
            found[prefix] = re.search(r"alias\s+(\S+);", body).group(1)
    return found


def test_nginx_has_no_public_location_for_stored_files():
    aliases = re.findall(r"location\s+(\S+)\s*\{[^}]*?alias", NGINX, re.S)
    assert aliases and set(aliases) == set(internal_locations())
    assert "location /media/" not in NGINX


def test_web_hands_files_to_the_internal_locations_that_serve_their_volumes(compose):
    env = compose["services"]["web"]["environment"]
    locations = internal_locations()
    assert locations[env["MEDIA_ACCEL_REDIRECT"]].rstrip("/") == env["MEDIA_ROOT"]
    assert locations[env["EXPORTS_ACCEL_REDIRECT"]].rstrip("/") == env["EXPORTS_ROOT"]


def test_the_proxy_reads_media_and_exports_but_never_staging(compose):
    proxy = mounts(compose, "proxy")
    env = compose["services"]["web"]["environment"]
    assert proxy["media"] == f"{env['MEDIA_ROOT']}:ro" and proxy["exports"] == f"{env['EXPORTS_ROOT']}:ro"
    assert "staging" not in proxy


def test_web_and_worker_share_the_staging_volume_outside_media(compose):
    env = compose["services"]["web"]["environment"]
    assert (
        mounts(compose, "web")["staging"]
        == mounts(compose, "worker")["staging"]
        == env["IMPORT_STAGING_ROOT"]
    )
    assert not env["IMPORT_STAGING_ROOT"].startswith(env["MEDIA_ROOT"])
