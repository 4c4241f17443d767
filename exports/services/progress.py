"""Live progress of a build (rows read / total), kept in a small file under EXPORTS_ROOT/.progress.

Not in the database: the build reads inside one long snapshot transaction, whose writes nobody would
see until it ends. A file works for every deployment (Redis or embedded, PostgreSQL or SQLite) and is
replaced atomically, so a reader never sees half of it."""

import os
import time
from pathlib import Path

import orjson
from django.conf import settings


def _path(version_id: int) -> Path:
    return Path(settings.EXPORTS_ROOT) / ".progress" / f"{version_id}.json"


def write(version_id: int, done: int, total: int) -> None:
    path = _path(version_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps({"done": done, "total": total}))
    os.replace(tmp, path)


class Reporter:
    """`write` for one build, at most once per `every` seconds (the page polls every 2 s) — but always
    the first report and the last one (done == total)."""

    def __init__(self, version_id: int, *, every: float = 0.5):
        self.version_id = version_id
        self.every = every
        self._last: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.every and done < total:
            return
        self._last = now
        write(self.version_id, done, total)


def read(version_id: int) -> dict | None:
    """{"done": rows read, "total": rows selected, "percent": 0–100} or None before the first report."""
    try:
        data = orjson.loads(_path(version_id).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    total = data.get("total") or 0
    data["percent"] = min(100, int(data.get("done", 0) * 100 / total)) if total else 0
    return data


def clear(version_id: int) -> None:
    _path(version_id).unlink(missing_ok=True)
