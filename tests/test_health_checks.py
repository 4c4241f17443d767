"""The containers' health checks, run for real: the web probe against a live server, the beat heartbeat
from a real `celery beat`, and docker-compose.yml's worker check against a real worker."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.workers import wait_for

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def run(command: list[str], env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=ROOT, env=env or dict(os.environ), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.django_db(transaction=True)
def test_web_check_passes_against_a_live_server_and_fails_without_one(live_server):
    ok = run([sys.executable, "-m", "web.health", "web", "--url", f"{live_server.url}/healthz/"])
    assert ok.returncode == 0, ok.stderr
    down = run([sys.executable, "-m", "web.health", "web", "--url", "http://127.0.0.1:9/healthz/"])
    assert down.returncode == 1 and "unhealthy" in down.stderr


@pytest.mark.worker
def test_beat_heartbeat_is_fresh_while_beat_runs_and_ages_when_it_stops(workers):
    beat = workers.start_beat("beat")
    heartbeat = Path(f"{workers.schedule(beat)}.heartbeat")
    check = [sys.executable, "-m", "web.health", "beat", "--schedule", str(workers.schedule(beat))]
    wait_for(heartbeat.exists, 30, "beat's first tick")
    assert run(check).returncode == 0
    workers.stop(beat)
    # The heartbeat's age is the point: wait until it is older than the limit below.
    wait_for(lambda: time.time() - heartbeat.stat().st_mtime > 1.1, 10, "the heartbeat to age past 1 s")
    stale = run([*check, "--max-age", "1"])
    assert stale.returncode == 1 and "beat last ticked" in stale.stderr


@pytest.mark.worker
def test_compose_worker_check_pings_the_containers_own_worker(workers):
    host = f"mmi-health-{uuid.uuid4().hex[:8]}"
    workers.env["HOSTNAME"] = host
    worker = workers.start("worker", node=f"celery@{host}")
    shell = COMPOSE["services"]["worker"]["healthcheck"]["test"][1].replace("$$", "$")
    bin_dir = str(Path(sys.executable).parent)  # `celery` as the container's PATH would find it
    env_with_path = dict(workers.env, PATH=f"{bin_dir}:{workers.env['PATH']}")
    result = run(["sh", "-c", shell], env=env_with_path, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"celery@{host}: OK" in result.stdout
    workers.stop(worker)
    gone = run(["sh", "-c", shell.replace("--timeout 10", "--timeout 2")], env=env_with_path)
    assert gone.returncode != 0
