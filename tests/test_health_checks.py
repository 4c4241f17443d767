"""The containers' health checks, run for real: the web probe against a live server, the beat heartbeat
from a real `celery beat`, and docker-compose.yml's worker check against a real worker."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def run(command: list[str], env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=ROOT, env=env or dict(os.environ), capture_output=True, text=True, timeout=timeout
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_web_check_passes_against_a_live_server_and_fails_without_one(live_server):
    ok = run([sys.executable, "-m", "web.health", "web", "--url", f"{live_server.url}/healthz/"])
    assert ok.returncode == 0, ok.stderr
    down = run([sys.executable, "-m", "web.health", "web", "--url", "http://127.0.0.1:9/healthz/"])
    assert down.returncode == 1 and "unhealthy" in down.stderr


@pytest.mark.worker
def test_beat_heartbeat_is_fresh_while_beat_runs_and_ages_when_it_stops(tmp_path):
    schedule = tmp_path / "celerybeat-schedule"
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mminstruct_site", "beat", "--loglevel=INFO",
         f"--schedule={schedule}", f"--pidfile={tmp_path / 'beat.pid'}"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    check = [sys.executable, "-m", "web.health", "beat", "--schedule", str(schedule)]
    try:
        wait_for(lambda: Path(f"{schedule}.heartbeat").exists(), 30, "beat's first tick")
        assert run(check).returncode == 0
    finally:
        stop(beat)
    time.sleep(1.2)  # the heartbeat's age is the point: let it grow past the limit below
    stale = run([*check, "--max-age", "1"])
    assert stale.returncode == 1 and "beat last ticked" in stale.stderr


@pytest.mark.worker
def test_compose_worker_check_pings_the_containers_own_worker(redis_url, tmp_path):
    host = f"mmi-health-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, REDIS_URL=redis_url, HOSTNAME=host)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mminstruct_site", "worker", "--pool=solo", "-n", f"celery@{host}",
         f"--pidfile={tmp_path / 'worker.pid'}", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    shell = COMPOSE["services"]["worker"]["healthcheck"]["test"][1].replace("$$", "$")
    bin_dir = str(Path(sys.executable).parent)  # `celery` as the container's PATH would find it
    env_with_path = dict(env, PATH=f"{bin_dir}:{env['PATH']}")
    try:
        deadline = time.monotonic() + 60
        while True:
            result = run(["sh", "-c", shell], env=env_with_path, timeout=60)
            if result.returncode == 0 or time.monotonic() > deadline or worker.poll() is not None:
                break
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"celery@{host}: OK" in result.stdout
    finally:
        stop(worker)
    gone = run(["sh", "-c", shell.replace("--timeout 10", "--timeout 2")], env=env_with_path)
    assert gone.returncode != 0
