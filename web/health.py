"""Health checks for the containers (Dockerfile HEALTHCHECK, docker-compose `healthcheck:`).

- web: `HealthCheckMiddleware` answers `GET /healthz/` first in the middleware stack — before the host
  check (a probe from inside the container does not know the public host name), the HTTPS redirect and
  the login wall — with 200 when the database answers, 503 otherwise. It changes nothing.
- beat: `HeartbeatScheduler` (CELERY_BEAT_SCHEDULER) touches `<schedule file>.heartbeat` at every tick
  of the scheduler loop (at least every CELERY_BEAT_MAX_LOOP_INTERVAL seconds); a beat whose loop
  stopped lets the file age.
- worker: `celery inspect ping` to the container's own node (in docker-compose.yml).

`python -m web.health web [--url URL]` and `python -m web.health beat --schedule PATH [--max-age S]`
exit 0 when healthy, 1 otherwise (what Docker expects).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from celery.beat import PersistentScheduler

HEALTH_PATH = "/healthz/"


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != HEALTH_PATH or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        from django.db import connection
        from django.http import JsonResponse

        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:  # any database failure means "not healthy", said in the body
            return JsonResponse({"status": "error", "detail": f"database: {type(exc).__name__}"}, status=503)
        return JsonResponse({"status": "ok"})


def heartbeat_path(schedule_filename: str | Path) -> Path:
    return Path(f"{schedule_filename}.heartbeat")


class HeartbeatScheduler(PersistentScheduler):
    """Celery's default scheduler, plus a heartbeat file touched at every tick."""

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        heartbeat_path(self.schedule_filename).touch()
        return interval


def check_web(url: str) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a fixed local URL
            return None if response.status == 200 else f"{url} answered {response.status}"
    except Exception as exc:
        return f"{url}: {exc}"


def check_beat(schedule: str, max_age: float) -> str | None:
    path = heartbeat_path(schedule)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return f"{path} does not exist: beat has not ticked yet"
    return None if age <= max_age else f"beat last ticked {age:.0f} s ago (more than {max_age:.0f} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web.health", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    web = sub.add_parser("web", help="GET /healthz/ of the local web server")
    web.add_argument("--url", default=f"http://127.0.0.1:8000{HEALTH_PATH}")
    beat = sub.add_parser("beat", help="the beat heartbeat file is fresh")
    beat.add_argument("--schedule", required=True, help="beat's --schedule file")
    beat.add_argument("--max-age", type=float, default=180, help="seconds (default 180)")
    args = parser.parse_args(argv)
    problem = check_web(args.url) if args.what == "web" else check_beat(args.schedule, args.max_age)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
