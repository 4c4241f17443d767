"""The embedded default under real use: a SQLite *file* database (not the test run's in-memory one), the
web server `make run` starts (`manage.py runserver`, threaded), 4 annotators claiming and saving through
the API while another process writes new drafts through corpus.services, for 30 s: every response is
2xx or 409, none is a 5xx, and the server never logs "database is locked"."""

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.workers import wait_for

ROOT = Path(__file__).resolve().parents[2]
DURATION = 30.0
ANNOTATORS = 4

MAKE_USERS = """
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
group = Group.objects.get(name="annotator")
for n in range({n}):
    user = User.objects.create_user(f"load{{n}}", password="load-test-pw")
    user.groups.add(group)
    print("TOKEN", Token.objects.create(user=user).key)
"""

# The draft writer: what a generation worker does to the database (new drafts, images back in the queue),
# through the same service, as fast as it can, until the deadline; prints what it wrote.
WRITE_DRAFTS = """
import json, random, time
from corpus.models import Image
from corpus.services.items import create_caption, create_instruction
deadline = time.time() + {duration}
ids = list(Image.objects.values_list("id", flat=True))
written = errors = 0
messages = []
while time.time() < deadline:
    image = Image.objects.get(pk=random.choice(ids))
    try:
        caption = create_caption(image, text=f"A draft caption number {{written}} of the image.", model_name="load")
        create_instruction(image, type="short_vqa", question="What is in the corner?", answer="a red square",
                           caption=caption, model_name="load")
        written += 1
    except Exception as exc:
        errors += 1
        messages.append(repr(exc)[:200])
    time.sleep(0.02)
print("WRITER", json.dumps({{"written": written, "errors": errors, "messages": messages[:5]}}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(args, env, **kw):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, **kw
    )


class Annotator(threading.Thread):
    """Claims the next image, reads its drafts, renews, accepts each draft with its version, gives the
    image back if new drafts arrived meanwhile; skips one image in five. Records every status code and
    anything that is not 2xx/409."""

    def __init__(self, base: str, token: str, deadline: float, seed: int):
        super().__init__(daemon=True)
        self.base, self.token, self.deadline = base, token, deadline
        self.rng = random.Random(seed)
        self.codes: Counter = Counter()
        self.errors: list[str] = []
        self.saves = 0

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError as exc:  # no answer at all counts as an error
            self.codes["no answer"] += 1
            self.errors.append(f"{method} {path}: {exc!r}")
            return None, None
        self.codes[status] += 1
        if not (200 <= status < 300 or status == 409):
            self.errors.append(f"{method} {path}: {status} {raw[:300]!r}")
        return status, (json.loads(raw) if raw and raw[:1] in b"{[" else None)

    def run(self):
        while time.time() < self.deadline:
            status, claim = self.call("POST", "/api/v1/review/images/next/", {})
            if status != 200:
                time.sleep(0.2)
                continue
            image_id = claim["id"]
            status, image = self.call("GET", f"/api/v1/review/images/{image_id}/")
            if status != 200:
                continue
            self.call("POST", f"/api/v1/review/images/{image_id}/renew/", {})
            if self.rng.random() < 0.2:
                self.call("POST", f"/api/v1/review/images/{image_id}/release/", {})
                continue
            drafts = [("caption", c) for c in image["captions"] if c["status"] == "draft"]
            drafts += [("instruction", i) for i in image["instructions"] if i["status"] == "draft"]
            done = False
            for kind, item in drafts:
                if time.time() >= self.deadline:
                    return
                status, saved = self.call(
                    "POST",
                    f"/api/v1/review/{kind}s/{item['id']}/save/",
                    {"expected_version": item["version"], "status": "accepted"},
                )
                self.saves += status == 200
                done = bool(saved and saved.get("image_done"))
            if not done:  # drafts written meanwhile: give the image back, as "next image" does
                self.call("POST", f"/api/v1/review/images/{image_id}/release/", {})


@pytest.mark.worker
def test_four_annotators_and_a_draft_writer_on_a_sqlite_file_for_30_seconds_see_no_errors(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / "media"),
        STATIC_ROOT=str(tmp_path / "static"),
        DEBUG="true",
        PYTHONUNBUFFERED="1",
        # Each annotator here makes ~1,100 calls a minute, above the default per-user throttle of
        # 600/minute; this test measures SQLite under write load, the throttle is tested elsewhere.
        API_THROTTLE_USER="100000/minute",
    )
    port = _free_port()
    for args in (["migrate", "--noinput"], ["load_demo", "--port", str(port)]):
        done = _manage(args, env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    made = _manage(["shell", "-c", MAKE_USERS.format(n=ANNOTATORS)], env, timeout=120)
    tokens = [line.split()[1] for line in made.stdout.splitlines() if line.startswith("TOKEN")]
    assert len(tokens) == ANNOTATORS, made.stderr[-3000:]

    server_log = tmp_path / "server.log"
    with server_log.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    writer = None
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                urllib.request.urlopen(base + "/accounts/login/", timeout=2).close()
                return True
            except OSError:
                assert server.poll() is None, server_log.read_text()[-3000:]
                return False

        wait_for(answers, 60, "the server to start", interval=0.3)

        writer = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", WRITE_DRAFTS.format(duration=DURATION)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        stop = time.time() + DURATION
        annotators = [Annotator(base, token, stop, seed) for seed, token in enumerate(tokens)]
        for a in annotators:
            a.start()
        for a in annotators:
            a.join(timeout=DURATION + 120)
        out, _ = writer.communicate(timeout=120)
    finally:
        for proc in (writer, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)

    codes = sum((a.codes for a in annotators), Counter())
    errors = [e for a in annotators for e in a.errors]
    report = json.loads(out.split("WRITER", 1)[1]) if "WRITER" in out else {"output": out[-3000:]}
    print("responses:", dict(codes), "saves:", sum(a.saves for a in annotators), "writer:", report)
    log_text = server_log.read_text(errors="replace")
    assert not errors, errors[:10]
    assert report.get("errors") == 0, report
    assert "database is locked" not in log_text and "Traceback" not in log_text, log_text[-3000:]
    # The test did real work: claims, saves and drafts all along the 30 s.
    assert codes[200] > 100 and sum(a.saves for a in annotators) > 50, dict(codes)
    assert report["written"] > 50, report
