"""Real Celery processes for the tests whose behaviour depends on them, and the one way to wait.

- `wait_for(predicate, timeout, what)`: poll until the predicate returns something true (and return it),
  or fail naming what never happened. Every test waits with it instead of a fixed sleep.
- `Workers`: `celery worker` and `celery beat` subprocesses on this test's database and Redis db, each
  with its own log file (`workers.log(name)`), stopped by their pid at the end of the test. Tests get one
  from the `workers` fixture (tests/conftest.py), which skips — or fails, with CI=true — when Redis is
  missing, or PostgreSQL for a test that uses the database (a worker cannot share an in-memory SQLite).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float, what: str, *, interval: float = 0.2):
    """The predicate's first true value, polled every `interval` s; AssertionError naming `what` after
    `timeout` s. A predicate may itself raise (e.g. a process it watches died) to stop waiting at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def database_url() -> str:
    """The URL of the database this test runs on (the test database), for a subprocess."""
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# Celery's own log lines about a task's life: received, then one end (a retry is received again).
_TASK_LINE = re.compile(
    r"Task [\w.]+\[([0-9a-f-]{36})\] (received|succeeded|failed|retry|raised|ignored|rejected)"
)


class Workers:
    """Real `celery worker` and `celery beat` processes; all are stopped (by pid) by `stop_all()`."""

    def __init__(self, tmp_path: Path, env: dict[str, str], redis_url: str):
        self.tmp_path = tmp_path
        self.env = env  # the environment of every process started from now on (tests update it)
        self.redis_url = redis_url
        self.procs: dict[str, subprocess.Popen] = {}
        self.kinds: dict[str, str] = {}

    def _spawn(self, name: str, kind: str, args: list[str], extra_env: dict[str, str]) -> None:
        if name in self.procs:
            raise ValueError(f"a process named {name} is already running")
        with open(self.tmp_path / f"{name}.log", "ab") as log:  # the child keeps its own handle
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "mminstruct_site", kind, *args],
                cwd=ROOT,
                env={**self.env, **extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.kinds[name] = kind

    def start(
        self, name: str | None = None, *, queues: str = "celery", node: str | None = None, wait: bool = True,
        **extra_env: str,
    ) -> str:  # fmt: skip
        """A worker (solo pool) consuming `queues`; by default returns once it logged "ready." (its
        worker_ready handlers have run). `extra_env` adds to `self.env` for this process only."""
        name = name or f"worker-{uuid.uuid4().hex[:8]}"
        node = node or f"{name}-{uuid.uuid4().hex[:6]}@%h"  # unique: no stale worker answers for it
        args = ["--pool=solo", "-Q", queues, "-n", node, "--loglevel=INFO", f"--pidfile={self.pidfile(name)}"]
        # Nothing in the tests needs the cluster chatter, and without it a worker is ready ~1 s sooner.
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self._spawn(name, "worker", args, extra_env)
        if wait:
            self.wait_for_log(name, " ready.", 60, what=f"worker {name} to start")
        return name

    def start_beat(self, name: str | None = None, *, wait: bool = True, **extra_env: str) -> str:
        """A beat: it sends CELERY_BEAT_SCHEDULE's sweeps every SWEEP_INTERVAL s (set it in `env` first;
        a worker runs them). Its schedule file is `workers.schedule(name)`."""
        name = name or f"beat-{uuid.uuid4().hex[:8]}"
        args = ["--loglevel=INFO", f"--schedule={self.schedule(name)}", f"--pidfile={self.pidfile(name)}"]
        self._spawn(name, "beat", args, extra_env)
        if wait:
            self.wait_for_log(name, "beat: Starting", 60, what=f"beat {name} to start")
        return name

    def pidfile(self, name: str) -> Path:
        return self.tmp_path / f"{name}.pid"

    def schedule(self, name: str) -> Path:
        return self.tmp_path / f"{name}-schedule"

    def proc(self, name: str) -> subprocess.Popen:
        return self.procs[name]

    def log(self, name: str) -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, name: str, text: str, timeout: float, *, what: str | None = None) -> None:
        """Until the process's log holds `text`; fails at once, with the log, if the process exits."""

        def logged() -> bool:
            if text in self.log(name):
                return True
            if self.procs[name].poll() is not None:
                raise AssertionError(f"{name} exited while waiting for {text!r}:\n{self.log(name)[-3000:]}")
            return False

        try:
            wait_for(logged, timeout, what or f"{text!r} in the log of {name}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- {name} (tail)\n{self.log(name)[-3000:]}") from None

    def open_tasks(self, name: str) -> int:
        """Tasks the worker received (its log says) and has not ended yet."""
        balance: Counter = Counter()
        for task_id, event in _TASK_LINE.findall(self.log(name)):
            balance[task_id] += 1 if event == "received" else -1
        return sum(n for n in balance.values() if n > 0)

    def queued(self) -> int:
        """Messages waiting in the broker or delivered and not yet acknowledged (tasks are acks_late)."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        lists = sum(client.llen(key) for key in client.scan_iter("*") if client.type(key) == b"list")
        return lists + client.hlen("unacked")

    def wait_idle(self, timeout: float, *, what: str = "the workers to run out of tasks") -> None:
        """Until no task waits in the broker and every running worker has ended every task it received.
        Checked twice in a row, so a message between the broker and the worker's log is not missed."""

        def idle() -> bool:
            workers = [
                n for n, kind in self.kinds.items() if kind == "worker" and self.procs[n].poll() is None
            ]
            return self.queued() == 0 and not any(self.open_tasks(n) for n in workers)

        wait_for(lambda: idle() and (time.sleep(0.3) or idle()), timeout, what)

    def kill(self, name: str) -> None:
        """SIGKILL: no warm shutdown, no ack — what a crashed machine does."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, name: str) -> None:
        """SIGTERM (warm shutdown), SIGKILL after 20 s; a frozen (SIGSTOP) process is woken first."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop_all(self) -> None:
        for path in sorted(self.tmp_path.glob("*.log")):
            print(f"--- {path.name} (tail)\n" + path.read_text(errors="replace")[-3000:])  # shown on failure
        for name in list(self.procs):
            self.stop(name)


def worker_env(redis_url: str, *, tmp_path: Path, uses_database: bool) -> dict[str, str]:
    """What a worker of this test reads: this test's Redis db, media, staging and exports folders, and
    its test database (or, for a test without one, a throwaway SQLite file no one else reads)."""
    from django.conf import settings

    return {
        **os.environ,
        "DATABASE_URL": database_url() if uses_database else f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "EXPORTS_ROOT": str(settings.EXPORTS_ROOT),
        "IMPORT_STAGING_ROOT": str(settings.IMPORT_STAGING_ROOT),
        "PYTHONUNBUFFERED": "1",
    }
