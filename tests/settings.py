"""Settings of the test suite: mminstruct_site/settings.py as production reads it (DEBUG off, the
environment's DATABASE_URL / REDIS_URL), plus only what a test run needs:

- a signing key of its own (production requires SECRET_KEY; a test run must not need one);
- static files found in place (collectstatic is not part of a test run, and the manifest storage that
  production uses refuses a file that is not in its manifest);
- a fast password hasher (every test makes people; PBKDF2's million rounds would be most of the run);
- its own cache key prefix, so the per-test clean-up (tests/conftest.py) deletes only the suite's keys.

Subprocesses the tests start (Celery workers) inherit DJANGO_SETTINGS_MODULE and read this file too.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-only-key-" + "k" * 40)

from mminstruct_site.settings import *  # noqa: E402, F403
from mminstruct_site.settings import CACHES, STORAGES  # noqa: E402

STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {**CACHES["default"], "KEY_PREFIX": "mmi-test"}}
