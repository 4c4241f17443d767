"""Settings, read from the environment. See .env.example and docs/configuration.md (the one table)."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# --- core -------------------------------------------------------------------------------------
# Production is the default: DEBUG only when asked for (`make run` sets DEBUG=true for the local demo).
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off. Set it to a long random string in the environment "
            "(or in .env beside docker-compose.yml), e.g. "
            "SECRET_KEY=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')\" — or, for local "
            "development only, set DEBUG=true (make run does)."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "accounts.apps.StudioAdminConfig",  # the Django admin, open to the admin role
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI from our own static files (/api/docs/ works offline)
    "axes",  # login lockout
    "accounts",
    "web",
    "corpus",
    "generation",
    "review",
    "exports",
    "studio",  # the home pages, one per role
]

MIDDLEWARE = [
    # First: container health probes (GET /healthz/) need no host name, HTTPS or login.
    "web.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Pages send anonymous users to the login page; the API answers 401/403 itself (token auth
    # happens inside DRF, after middleware).
    "accounts.roles.LoginRequiredForPagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mminstruct_site.urls"
WSGI_APPLICATION = "mminstruct_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.roles.roles_context",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # replaces a reused connection that died (a DB restart)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the embedded worker and the web process write to one file.
    # WAL + a busy timeout let the embedded worker and the web process write to one file; IMMEDIATE makes
    # every transaction take the write lock when it begins, so a second writer waits its turn under the
    # busy timeout instead of failing at once with "database is locked" when a deferred transaction that
    # read first tries to write (SQLite refuses that upgrade without waiting).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # The claim and export queries rely on index scans; the default 4.0 makes the planner ignore
    # them (see docs/performance.md).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c random_page_cost=1.1")
if not DEBUG and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Production: a database server across the network without a password is a configuration mistake
    # (compose refuses to start without POSTGRES_PASSWORD). A local socket or loopback may use trust or
    # peer authentication.
    _db_host = DATABASES["default"].get("HOST") or ""
    if _db_host not in ("", "localhost", "127.0.0.1", "::1") and not _db_host.startswith("/"):
        if not DATABASES["default"].get("PASSWORD"):
            raise ImproperlyConfigured(
                f"DATABASE_URL names the database server {_db_host!r} without a password while DEBUG is off. "
                "Put the password in it (postgres://user:PASSWORD@host:5432/name); with docker compose, set "
                "POSTGRES_PASSWORD in the environment or in .env."
            )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "accounts.admin_site.RoleBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Login lockout (django-axes): LOGIN_FAILURE_LIMIT failed logins for one username, or from one client
# address, within LOGIN_COOLOFF_MINUTES pause logins for that username / address for that long (a failure
# during the pause starts it again). The login page says so (corpus.lockout); a success resets the count.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "corpus.lockout.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "accounts.throttles.client_ip"
AXES_VERBOSE = False

# --- security ---------------------------------------------------------------------------------
# Behind a TLS proxy set USE_HTTPS=true: Secure cookies, HSTS, http → https redirects, and the proxy's
# X-Forwarded-Proto header trusted to say a request came over https.
USE_HTTPS = env_bool("USE_HTTPS", False)
_ssl_header = env("SECURE_PROXY_SSL_HEADER") or ("X-Forwarded-Proto" if USE_HTTPS else "none")
if _ssl_header.lower() != "none":
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _ssl_header.upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", USE_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = USE_HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if USE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Reverse proxies in front of Django whose X-Forwarded-For is trusted (docker compose: 1, its nginx). The
# client address of throttles and login lockout is the entry the last of them added; 0 = REMOTE_ADDR.
PROXY_COUNT = env_int("PROXY_COUNT", 0)
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every response: only this site's own scripts, styles, images and
# connections — no inline scripts or style attributes anywhere (htmx's inline indicator style is turned off
# in base.html), no framing. /api/docs/ adds `data:` images for Swagger UI's icons (mminstruct_site/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF],
        "style-src": [CSP_SELF],
        "img-src": [CSP_SELF],
        "font-src": [CSP_SELF],
        "connect-src": [CSP_SELF],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
    }
}
# Error pages inside the site layout (web.error_pages); JSON on /api/ paths.
CSRF_FAILURE_VIEW = "web.error_pages.csrf_failure"

# --- i18n, static, media ----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request otherwise
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(VAR_DIR / "media")))
# Images and thumbnails are served only after the role check (corpus.views.media.media_file). Behind nginx
# the view answers X-Accel-Redirect to this `internal` location (deploy/nginx.conf) and nginx sends the
# bytes; empty (embedded mode, gunicorn alone) the view streams them itself.
MEDIA_ACCEL_REDIRECT = env("MEDIA_ACCEL_REDIRECT", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: DRF answers an anonymous call with 401 and the first class's WWW-Authenticate
        # header; session auth has none, so with it first the answer was 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every endpoint must name the roles it serves (view.allowed_roles); one that forgets is closed.
    "DEFAULT_PERMISSION_CLASSES": ["accounts.roles.HasRole"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "web.api_schema.StudioAutoSchema",
    # JSON only: /api/docs/ is the browsable documentation (the browsable API's inline scripts break the CSP).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's parsers with the body size limit (413) and a JSON nesting limit (400).
    "DEFAULT_PARSER_CLASSES": [
        "web.api_errors.JSONParser",
        "web.api_errors.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Every API error is {"detail": "…", "errors": {field: [...]}} with the right 4xx (web.api_errors).
    "EXCEPTION_HANDLER": "web.api_errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttles.AnonThrottle",
        "accounts.throttles.UserThrottle",
        "accounts.throttles.ActionThrottle",
    ],
    # Requests per user (per client address when anonymous): "N/second|minute|hour|day". The last three
    # are the tighter scopes of the costly commands (a view's `throttle_scope`, see accounts.throttles).
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", "60/minute"),
        "user": env("API_THROTTLE_USER", "600/minute"),
        "job_launch": env("API_THROTTLE_JOB_LAUNCH", "30/hour"),
        "regeneration": env("API_THROTTLE_REGENERATION", "10/minute"),
        "export_build": env("API_THROTTLE_EXPORT_BUILD", "30/hour"),
    },
    "NUM_PROXIES": PROXY_COUNT,
}
# Exception classes → the status the API answers when one escapes a view (web.api_errors); apps add
# their domain errors in their own block: API_ERROR_STATUS["review.selectors.NoSuchItem"] = 404.
API_ERROR_STATUS = {
    "django.db.models.ProtectedError": 409,
    "django.db.models.RestrictedError": 409,
    "django.db.IntegrityError": 409,  # CHECK and NOT NULL violations answer 400
    "django.db.DataError": 400,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MMInstruct Studio API",
    "DESCRIPTION": "Images, captions, instructions, generation jobs, review and exports. Every error is "
    '`{"detail": "…", "errors": {"field": ["…"]}}` (`errors` for validation errors only).',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    # validatorUrl null: Swagger UI would otherwise send the schema to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -----------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")
EMBEDDED_MODE = not REDIS_URL
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # Above the longest countdown a task is queued with, so Redis never redelivers a waiting task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 7200)}
else:
    # Embedded mode: a broker that needs no server, a folder under var/. `make run` starts a worker
    # on it, so long work still never runs inside a request.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Periodic work (recovery, sweeps, clean-up) runs on Celery beat, never inside a request. Each app adds
# its own entries in its block below; every swept task is idempotent, so two beats by mistake are safe.
SWEEP_INTERVAL = env_int("SWEEP_INTERVAL", 30)
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat's loop wakes at least this often and touches a heartbeat file (the beat container's healthcheck).
CELERY_BEAT_SCHEDULER = "web.health:HeartbeatScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 60

# --- cache ------------------------------------------------------------------------------------
# Throttle counters and login lockouts: in Redis when there is one, so every web process counts together;
# in embedded mode one process serves the site, its memory is enough (lockouts then live in the database).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "mmi",
        }
    }
    AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"

# --- corpus: image import ---------------------------------------------------------------------
# Images above this many pixels are refused at import (decompression bombs).
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 50_000_000)
IMAGE_MAX_BYTES = env_int("IMAGE_MAX_BYTES", 50 * 1024 * 1024)
THUMBNAIL_SIZE = 256
# Hamming distance at or below which two perceptual hashes flag a near-duplicate.
NEAR_DUPLICATE_DISTANCE = env_int("NEAR_DUPLICATE_DISTANCE", 4)
# Uploads above these (or holding a .zip) are imported by a worker, not inside the request.
IMPORT_INLINE_MAX_FILES = env_int("IMPORT_INLINE_MAX_FILES", 50)
IMPORT_INLINE_MAX_BYTES = env_int("IMPORT_INLINE_MAX_BYTES", 20 * 1024 * 1024)
# Staged uploads wait for their worker here, outside MEDIA_ROOT (no URL reaches them); a batch's folder
# is removed when the batch ends, done or failed.
IMPORT_STAGING_ROOT = Path(env("IMPORT_STAGING_ROOT", str(VAR_DIR / "staging")))
# A batch queued or running with no progress for this long is abandoned: the sweep fails it with the
# reason and removes its folder. Keep it above CELERY_VISIBILITY_TIMEOUT (a dead worker's batch is
# redelivered and resumed first) and above the longest wait in a busy queue.
IMPORT_ABANDONED_SECONDS = env_int("IMPORT_ABANDONED_SECONDS", 24 * 3600)
CELERY_BEAT_SCHEDULE["corpus-sweep"] = {"task": "corpus.sweep", "schedule": SWEEP_INTERVAL}
# Names for the corpus's status enums in the OpenAPI schema (several models have a `status`); other apps
# add theirs the same way in their own block.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "ItemStatusEnum": "corpus.models.ItemStatus",
        "ImportBatchStatusEnum": "corpus.models.ImportBatchStatus",
        "ReviewStatusEnum": "corpus.models.ReviewStatus",
    }
)

# --- generation -------------------------------------------------------------------------------
OPENAI_API_KEY = env("OPENAI_API_KEY")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", "https://api.openai.com/v1")
OPENAI_VISION_MODEL = env("OPENAI_VISION_MODEL", "gpt-4.1")
OPENAI_TEXT_MODEL = env("OPENAI_TEXT_MODEL", "gpt-4.1-mini")
# The two default endpoints made from the variables above (ensure_default_endpoints updates them).
OPENAI_API_KEY_ENV = env("OPENAI_API_KEY_ENV", "OPENAI_API_KEY")  # the variable's NAME is stored
OPENAI_RPM_LIMIT = env_int("OPENAI_RPM_LIMIT", 500)
OPENAI_TPM_LIMIT = env_int("OPENAI_TPM_LIMIT", 0)
OPENAI_MAX_CONCURRENCY = env_int("OPENAI_MAX_CONCURRENCY", 16)
OPENAI_TIMEOUT = float(env("OPENAI_TIMEOUT", "120"))
OPENAI_SUPPORTS_JSON_SCHEMA = env_bool("OPENAI_SUPPORTS_JSON_SCHEMA", True)
# USD per million tokens (in, out) of the default models; set them for your provider.
OPENAI_VISION_PRICES = (env("OPENAI_VISION_PRICE_IN", "2.00"), env("OPENAI_VISION_PRICE_OUT", "8.00"))
OPENAI_TEXT_PRICES = (env("OPENAI_TEXT_PRICE_IN", "0.40"), env("OPENAI_TEXT_PRICE_OUT", "1.60"))
# The image goes to the vision model downscaled to this longest side, as a base64 data URL.
GENERATION_IMAGE_MAX_SIDE = env_int("GENERATION_IMAGE_MAX_SIDE", 1024)
# Units per Celery task; each task keeps up to the endpoint's max_concurrency calls in flight.
GENERATION_CHUNK_SIZE = env_int("GENERATION_CHUNK_SIZE", 100)
# A task whose own units are done keeps its calls in flight with other pending units of the job.
GENERATION_STEAL_WORK = env_bool("GENERATION_STEAL_WORK", True)
# Retries of transient failures (429, 5xx, timeouts, connection errors, malformed output) per unit.
GENERATION_MAX_ATTEMPTS = env_int("GENERATION_MAX_ATTEMPTS", 5)
GENERATION_BACKOFF_BASE = float(env("GENERATION_BACKOFF_BASE", "1.0"))
GENERATION_BACKOFF_CAP = float(env("GENERATION_BACKOFF_CAP", "30"))
GENERATION_RETRY_AFTER_CAP = float(env("GENERATION_RETRY_AFTER_CAP", "120"))
# The rate limiter's window (60 s = per minute; tests shrink it and scale the limits with it) and a
# safety margin so that arrival jitter at the server never puts limit+1 requests in one window.
GENERATION_RATE_WINDOW = float(env("GENERATION_RATE_WINDOW", "60"))
GENERATION_RATE_MARGIN = float(env("GENERATION_RATE_MARGIN", "0.5"))
# How long a running unit belongs to its worker before a sweep may hand it to another (0 = derive it
# from the endpoint: every attempt's timeout and backoff plus a minute).
GENERATION_UNIT_LEASE_SECONDS = env_int("GENERATION_UNIT_LEASE_SECONDS", 0)
# Output tokens reserved in the token limiter before a call's real usage is known.
GENERATION_TOKENS_RESERVED = env_int("GENERATION_TOKENS_RESERVED", 1000)
# A running job whose pending units saw no progress for this long gets them queued again by the sweep:
# the backstop if a chunk's message is stuck with a dead worker.
GENERATION_STALL_SECONDS = env_int("GENERATION_STALL_SECONDS", 300)
# Celery beat runs the generation sweep every SWEEP_INTERVAL seconds: units whose lease ended and stalled
# chunks are queued again, jobs whose units all ended are finished (generation/services/recovery.py).
# A sweep still waiting when the next is due is dropped (expires): sweeps never pile up behind busy workers.
CELERY_BEAT_SCHEDULE["generation-sweep"] = {
    "task": "generation.sweep",
    "schedule": SWEEP_INTERVAL,
    "options": {"expires": SWEEP_INTERVAL},
}
# An endpoint's key variable must match this (full match); server secrets are refused whatever it says.
GENERATION_API_KEY_ENV_PATTERN = env("GENERATION_API_KEY_ENV_PATTERN", r"[A-Z][A-Z0-9_]*_API_KEY")
# Endpoints on loopback or private addresses (a local vLLM); link-local and metadata ones never.
GENERATION_ALLOW_PRIVATE_ENDPOINTS = env_bool("GENERATION_ALLOW_PRIVATE_ENDPOINTS", True)
# Seconds the "Test connection" call may take (at most the endpoint's own timeout).
GENERATION_TEST_TIMEOUT = float(env("GENERATION_TEST_TIMEOUT", "15"))
# Regenerations one person may ask for per hour (the review page's "Regenerate"): each is a paid call.
REGENERATION_HOURLY_QUOTA = env_int("REGENERATION_HOURLY_QUOTA", 30)
# One OpenAPI enum name for the instruction types, whichever serializer field uses them.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["InstructionTypeEnum"] = (
    "corpus.rules.InstructionType"
)
if REDIS_URL:
    # kombu scans for unacked messages of dead workers every interval × throttle seconds (default 10 × 10);
    # scan every interval so a killed worker's chunk comes back soon after the visibility timeout.
    CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"] = env_int(
        "CELERY_UNACKED_RESTORE_INTERVAL", 5
    )
    CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_throttle"] = 1

# Generation's domain errors on the API (web.api_errors): bad launch or template input is a 400 naming the
# field; a launch on an endpoint known to be broken (send force=true), deleting an endpoint jobs used and
# a template saved by two editors at once are 409s.
API_ERROR_STATUS["generation.services.jobs.LaunchError"] = 400
API_ERROR_STATUS["generation.services.jobs.NeedsConfirmation"] = 409
API_ERROR_STATUS["generation.services.endpoints.EndpointInUse"] = 409
API_ERROR_STATUS["generation.services.prompts.TemplateError"] = 400
API_ERROR_STATUS["generation.services.prompts.TemplateChanged"] = 409

# (generation settings above this line)

# --- review -----------------------------------------------------------------------------------
# How long a claimed image stays leased to its annotator without a heartbeat (the page renews it).
REVIEW_LEASE_SECONDS = env_int("REVIEW_LEASE_SECONDS", 15 * 60)
# How often the review page renews the lease (seconds); well under the lease.
REVIEW_HEARTBEAT_SECONDS = env_int("REVIEW_HEARTBEAT_SECONDS", 60)
# Share (0–1) of reviewed images that go to a second reviewer.
REVIEW_SECOND_PASS_SHARE = float(env("REVIEW_SECOND_PASS_SHARE", "0.1"))
# Throughput statistics: a gap between two decisions longer than this is a break, not work.
REVIEW_IDLE_SECONDS = env_int("REVIEW_IDLE_SECONDS", 300)
# Expired review and second-pass leases go back to their queues without anyone claiming.
CELERY_BEAT_SCHEDULE["review-sweep"] = {"task": "review.sweep", "schedule": SWEEP_INTERVAL}
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["SaveStatusEnum"] = "review.api.SAVE_STATUS_CHOICES"
# The errors of an item's save and of the review state on the API (web.api_errors): an edit against a version
# someone else changed, a lease someone else holds or the caller never took, are 409s (with a `code`, and
# both versions of a stale edit); a broken rule, a move the status table refuses, a mark that does not fit
# its item are 400s naming the field; an unknown item 404; regeneration: not the lease holder 403, over the
# hourly quota 429 with Retry-After, refused by the engine 409.
API_ERROR_STATUS["corpus.services.items.StaleVersion"] = 409
API_ERROR_STATUS["corpus.services.review_state.LeaseError"] = 409
API_ERROR_STATUS["corpus.rules.InstructionRuleError"] = 400
API_ERROR_STATUS["corpus.transitions.InvalidTransition"] = 400
API_ERROR_STATUS["review.services.corrections.MarkError"] = 400
API_ERROR_STATUS["review.selectors.NoSuchItem"] = 404
API_ERROR_STATUS["review.services.corrections.RegenerationRefused"] = 409
API_ERROR_STATUS["review.services.corrections.RegenerationForbidden"] = 403
API_ERROR_STATUS["review.services.corrections.RegenerationQuotaExceeded"] = 429
API_ERROR_STATUS["review.services.second_pass.SecondPassError"] = 400

# (review settings above this line)

# --- quality (docs/quality.md) ----------------------------------------------------------------
# Two questions (or two MCQ options) at or above this rapidfuzz similarity (0-100) say the same thing.
QUALITY_SIMILARITY_THRESHOLD = float(env("QUALITY_SIMILARITY_THRESHOLD", "90"))
# An answer shorter than its domain's median for the type / this ratio (or longer than × it) is flagged.
QUALITY_LENGTH_OUTLIER_RATIO = float(env("QUALITY_LENGTH_OUTLIER_RATIO", "3"))
# The length check needs at least this many peers of the type in the domain (newest QUALITY_LENGTH_PEERS).
QUALITY_LENGTH_MIN_PEERS = env_int("QUALITY_LENGTH_MIN_PEERS", 30)
QUALITY_LENGTH_PEERS = env_int("QUALITY_LENGTH_PEERS", 500)
# Instructions with the same question key read per duplicate-in-domain lookup (bounds its cost).
QUALITY_DUPLICATE_CANDIDATES = env_int("QUALITY_DUPLICATE_CANDIDATES", 20)
# Review by exception: the share (0-1) of auto-acceptable items still sent to people (a stable hash).
QUALITY_AUDIT_SHARE = float(env("QUALITY_AUDIT_SHARE", "0.1"))
# The verifier's precision and recall (of "unsupported" against people's rejects and edits) a domain's
# decided items must show, over at least QUALITY_MIN_DECIDED items, before auto-accept may be switched on;
# an audit below them switches it off again.
QUALITY_MIN_PRECISION = float(env("QUALITY_MIN_PRECISION", "0.8"))
QUALITY_MIN_RECALL = float(env("QUALITY_MIN_RECALL", "0.8"))
QUALITY_MIN_DECIDED = env_int("QUALITY_MIN_DECIDED", 50)
# The cost of an accepted instruction (review/services/ledger.py): people's active time at an hourly rate
# per role, in COST_CURRENCY; the manual baseline is measured (the time before each instruction written
# by hand, up to COST_MANUAL_MAX_SECONDS) unless COST_MANUAL_SECONDS gives it (0 = measure).
COST_CURRENCY = env("COST_CURRENCY", "USD")
COST_HOURLY_RATE_ANNOTATOR = float(env("COST_HOURLY_RATE_ANNOTATOR", "20"))
COST_HOURLY_RATE_ADMIN = float(env("COST_HOURLY_RATE_ADMIN", "40"))
COST_HOURLY_RATE_RESEARCHER = float(env("COST_HOURLY_RATE_RESEARCHER", "40"))
COST_MANUAL_SECONDS = float(env("COST_MANUAL_SECONDS", "0"))
COST_MANUAL_MAX_SECONDS = env_int("COST_MANUAL_MAX_SECONDS", 1800)
API_ERROR_STATUS["review.services.auto_accept.AutoAcceptRefused"] = 409
CELERY_BEAT_SCHEDULE["review-auto-accept"] = {
    "task": "review.auto_accept",
    "schedule": SWEEP_INTERVAL,
    "options": {"expires": SWEEP_INTERVAL},
}

# (quality settings above this line)

# --- exports ----------------------------------------------------------------------------------
EXPORTS_ROOT = Path(env("EXPORTS_ROOT", str(VAR_DIR / "exports")))
# Annotators may see and download built exports when an admin turns this on (they never build).
EXPORTS_ANNOTATORS_MAY_DOWNLOAD = env_bool("EXPORTS_ANNOTATORS_MAY_DOWNLOAD", False)
# Hash the archive before serving it and refuse a file that no longer matches its recorded sha256.
EXPORTS_VERIFY_ON_DOWNLOAD = env_bool("EXPORTS_VERIFY_ON_DOWNLOAD", True)
# Below the broker's visibility timeout (CELERY_VISIBILITY_TIMEOUT), or Redis redelivers a running build.
EXPORTS_BUILD_SOFT_TIME_LIMIT = env_int("EXPORTS_BUILD_SOFT_TIME_LIMIT", 6600)
# A building version's worker moves its heartbeat every EXPORTS_HEARTBEAT_SECONDS (from a thread). One
# silent for EXPORTS_HEARTBEAT_TIMEOUT lost its worker: the sweep queues it again (the next attempt starts
# from scratch) or, once it was started EXPORTS_BUILD_MAX_ATTEMPTS times, marks it failed with the reason.
EXPORTS_HEARTBEAT_SECONDS = float(env("EXPORTS_HEARTBEAT_SECONDS", "5"))
EXPORTS_HEARTBEAT_TIMEOUT = env_int("EXPORTS_HEARTBEAT_TIMEOUT", 60)
EXPORTS_BUILD_MAX_ATTEMPTS = env_int("EXPORTS_BUILD_MAX_ATTEMPTS", 3)
# A version still queued this many seconds after it was queued lost its task message (a crash between
# the commit and the send, a broker that lost its queue): the sweep sends its build task again. Keep it
# above the usual wait in a busy queue — a task that was only slow then arrives twice, and the second
# one does nothing (the build is idempotent).
EXPORTS_QUEUED_TIMEOUT = env_int("EXPORTS_QUEUED_TIMEOUT", 600)
# Behind nginx: downloads answer X-Accel-Redirect to this `internal` location (deploy/nginx.conf) after the
# role check and the sha256 check, and nginx sends the bytes (and byte ranges). Empty: Django streams them.
EXPORTS_ACCEL_REDIRECT = env("EXPORTS_ACCEL_REDIRECT", "")
CELERY_BEAT_SCHEDULE["exports-sweep"] = {"task": "exports.sweep", "schedule": SWEEP_INTERVAL}
# A refused export request (not built yet, an archive that no longer matches its sha256, a build that is
# not allowed now) is a 409 — on the API and on the pages (exports.views.common.exports_page); input that
# is not usable (a spec, a diff's other version) is a 400 naming its fields.
API_ERROR_STATUS["exports.services.specs.ExportError"] = 409
API_ERROR_STATUS["exports.services.specs.InvalidRequest"] = 400
# (exports settings above this line)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
