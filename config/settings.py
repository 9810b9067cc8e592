"""Loupe settings: read once from the environment (12-factor), failing closed.

DEBUG is off unless asked for; outside DEBUG, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and
CELERY_BROKER_URL must be set, and a SECRET_KEY Django calls insecure is refused. SQLite is the
zero-setup default only when DEBUG or the demo switch (LOUPE_DEMO) is on.
"""

import os
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(str(env_file))

DEBUG = env.bool("DEBUG", default=False)
# The demo (`python3 dev.py run`) takes DEBUG's local defaults (SQLite, a fixed key, localhost, static
# files served from the source tree) but keeps DEBUG off, so it shows Loupe's own error pages.
DEMO = env.bool("LOUPE_DEMO", default=False)
LOCAL = DEBUG or DEMO
TESTING = env.bool("LOUPE_TESTING", default="pytest" in sys.modules)


def _required(key, default_when_debug):
    if key in env.ENVIRON:
        return env.str(key)
    if LOCAL or TESTING:
        return default_when_debug
    raise ImproperlyConfigured(f"{key} must be set when DEBUG is off (see .env.example)")


SECRET_KEY = _required("SECRET_KEY", "insecure-dev-only-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if (LOCAL or TESTING) else []
)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off (see .env.example)")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "labeling",
    "bugqueue",
    "alerts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
# PostgreSQL in production and CI; SQLite is the first-run default (DEBUG, the demo or tests only).
if "DATABASE_URL" in env.ENVIRON:
    DATABASES = {"default": env.db("DATABASE_URL")}
elif LOCAL or TESTING:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")}}
else:
    raise ImproperlyConfigured("DATABASE_URL must be set when DEBUG is off (see .env.example)")

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Write transactions take the lock at BEGIN, so they serialize instead of failing mid-way.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
    if TESTING:
        # A test database in a file, as the demo runs, not in memory: an in-memory database is one
        # connection shared by the test and the live server's request threads (browser tests), whose
        # concurrent requests then interleave savepoints or hit shared-cache table locks, which do not
        # wait. One file per test process (a test may start another pytest), removed when it exits.
        import atexit
        import tempfile

        _test_db = os.path.join(tempfile.gettempdir(), f"loupe-test-{os.getpid()}.sqlite3")
        DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", _test_db)

        @atexit.register
        def _remove_test_db(path=_test_db):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    if "postgresql" in DATABASES["default"]["ENGINE"] and not env.bool("LOUPE_PG_JIT", default=False):
        # JIT off: Loupe's counts over a few hundred thousand rows pass jit_above_cost, and compiling
        # them costs more than it saves (LOUPE_PG_JIT=true turns it back on).
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["options"] = (_options.get("options", "") + " -c jit=off").strip()
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # transactions belong to services
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if (LOCAL or TESTING)
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

WHITENOISE_USE_FINDERS = LOCAL or TESTING
WHITENOISE_AUTOREFRESH = LOCAL  # look files up per request, as under DEBUG: no collected copy needed

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not LOCAL and not TESTING)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not LOCAL and not TESTING)

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if LOCAL
    else "django.core.mail.backends.smtp.EmailBackend",
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="loupe@localhost")
LOUPE_BASE_URL = env.str("LOUPE_BASE_URL", default="")  # absolute links in mails (the weekly bug digest)

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeling.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "common.api.schema.LoupeAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "common.api.pagination.DefaultPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "common.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loupe API",
    "DESCRIPTION": "The human loop around a production ML model.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from the installed sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- API errors in one shape -----------------------------------------------------------------
# A CSRF failure under /api/ answers in the API's error shape; other paths keep Django's page.
CSRF_FAILURE_VIEW = "common.api.errors.csrf_failure"

# Upload limits for ingestion endpoints (rows and bytes); Django's own limit is set just above
# so that our view can answer 413 with the limit instead of Django's generic 400.
LOUPE_MAX_BATCH_ROWS = env.int("LOUPE_MAX_BATCH_ROWS", default=10_000)
LOUPE_MAX_BATCH_BYTES = env.int("LOUPE_MAX_BATCH_BYTES", default=20 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = LOUPE_MAX_BATCH_BYTES + 1024 * 1024

# --- Celery ---------------------------------------------------------------------------------
# Running tasks in-process is an explicit switch (the demo command turns it on); a missing
# broker outside that switch is a configuration error, never a silent fallback.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
if "CELERY_BROKER_URL" in env.ENVIRON:
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
elif CELERY_TASK_ALWAYS_EAGER or TESTING:
    CELERY_BROKER_URL = "memory://"
elif LOCAL:
    CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"  # local default for development; fails loudly if absent
else:
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL must be set (e.g. redis://127.0.0.1:6379/0), or CELERY_TASK_ALWAYS_EAGER=true "
        "to run background tasks in-process (demo only)"
    )
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {}  # filled by apps in their AppConfig.ready()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- quality runs (labeling.services.quality) -------------------------------------------------
LOUPE_QUALITY_RUN_TIMEOUT = env.int("LOUPE_QUALITY_RUN_TIMEOUT", default=3600)
LOUPE_QUALITY_KEEP_RESULTS_RUNS = env.int("LOUPE_QUALITY_KEEP_RESULTS_RUNS", default=5)
# How long a reviewer may undo a decision (POST /api/items/{id}/resolve/undo), in seconds.
LOUPE_REVIEW_UNDO_SECONDS = env.int("LOUPE_REVIEW_UNDO_SECONDS", default=600)

# --- authentication: expiring tokens, login lockout, shared cache ---------------------------------
# API tokens are django-rest-knox tokens (stored hashed, one per login, with an expiry) in Loupe's own
# model, which adds a name for service-account tokens and ties each token to the password it was
# issued under. Failed logins (login form, admin, POST /api/auth/token) are counted by django-axes
# per username and per client address in the cache; past the limit both answer 429 until the
# cool-off has passed since the last failure.
from datetime import timedelta  # noqa: E402

KNOX_TOKEN_MODEL = "labeling.ApiToken"
# knox's own migrations would create its default token table even though the model is swapped out
# (and that table's key to auth_user then blocks the test database's flush): knox has nothing to migrate.
MIGRATION_MODULES = {"knox": None}
LOUPE_TOKEN_TTL = env.int("LOUPE_TOKEN_TTL", default=10 * 3600)  # seconds a login token lives
REST_KNOX = {
    "TOKEN_TTL": timedelta(seconds=LOUPE_TOKEN_TTL),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
# The client address is REMOTE_ADDR unless Loupe runs behind that many trusted proxies, which each
# append to X-Forwarded-For (DRF's NUM_PROXIES; both the lockout and the rate limit use it).
REST_FRAMEWORK["NUM_PROXIES"] = env.int("LOUPE_NUM_PROXIES", default=0)
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"auth_token": env.str("LOUPE_TOKEN_RATE", default="30/minute")}

AUTHENTICATION_BACKENDS = [
    "labeling.login_guard.LoginGuardBackend",
    "django.contrib.auth.backends.ModelBackend",
]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as django-axes asks
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one past the limit locks
AXES_FAILURE_LIMIT = env.int("LOUPE_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(seconds=env.int("LOUPE_LOGIN_COOLOFF", default=900))
AXES_CLIENT_IP_CALLABLE = "labeling.login_guard.client_address"
AXES_USERNAME_CALLABLE = "labeling.login_guard.attempted_username"
AXES_LOCKOUT_CALLABLE = "labeling.login_guard.lockout_response"
AXES_ENABLE_ADMIN = False  # the cache handler keeps no attempt rows to show
AXES_VERBOSE = False

# The login counts and rate limits must be shared by every gunicorn worker: CACHE_URL names a Redis
# (redis://host:6379/1, Django's own RedisCache). Without it each process keeps its own counts in
# memory, which is what the demo and the tests use; django-axes warns (axes.W001) outside DEBUG.
if "CACHE_URL" in env.ENVIRON:
    CACHES = {"default": env.cache_url("CACHE_URL")}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "loupe"}}
    if LOCAL or TESTING:
        SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "axes.W001"]

# --- deployment security (what `manage.py check --deploy` asks for) ------------------------------
# A SECRET_KEY that Django's own check calls insecure (its prefix for generated development keys,
# too short, too few distinct characters) is refused outside DEBUG and the demo, not merely warned of.
from django.core.checks.security import base as _security  # noqa: E402

if not (LOCAL or TESTING) and (
    SECRET_KEY.startswith(_security.SECRET_KEY_INSECURE_PREFIX)
    or len(SECRET_KEY) < _security.SECRET_KEY_MIN_LENGTH
    or len(set(SECRET_KEY)) < _security.SECRET_KEY_MIN_UNIQUE_CHARACTERS
):
    raise ImproperlyConfigured(
        f"SECRET_KEY is insecure: use at least {_security.SECRET_KEY_MIN_LENGTH} random characters "
        f"({_security.SECRET_KEY_MIN_UNIQUE_CHARACTERS}+ distinct, not starting with "
        f"'{_security.SECRET_KEY_INSECURE_PREFIX}'), e.g. the output of "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

# HTTPS is usually ended by a proxy in front of gunicorn, so these are off unless the deployment says
# so (see .env.example): turning them on where HTTPS does not reach the browser locks users out.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# "HEADER,value": the request header (as in request.META) that the proxy sets to `value` on HTTPS
# requests, e.g. HTTP_X_FORWARDED_PROTO,https. Only behind a proxy that always sets or strips it.
# A name without HTTP_ (e.g. X-Forwarded-Proto) would never match: refused rather than ignored.
_proxy_header = [part.strip() for part in env.list("SECURE_PROXY_SSL_HEADER", default=[])]
if _proxy_header:
    if len(_proxy_header) != 2 or not all(_proxy_header) or not _proxy_header[0].startswith("HTTP_"):
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must be 'HEADER,value' with a request.META header name, "
            "e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = tuple(_proxy_header)

# --- request bodies (common.http.request_body, common.api.json_body) -----------------------------
# Every request body has a size limit, checked before it is read (413); ingestion endpoints raise it
# to LOUPE_MAX_BATCH_BYTES. JSON bodies nest at most LOUPE_MAX_JSON_DEPTH levels.
LOUPE_MAX_REQUEST_BYTES = env.int("LOUPE_MAX_REQUEST_BYTES", default=1024 * 1024)
LOUPE_MAX_JSON_DEPTH = env.int("LOUPE_MAX_JSON_DEPTH", default=64)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.csrf.CsrfViewMiddleware"), "common.http.request_body.RequestBodyMiddleware"
)
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = [
    "common.api.parsers.JSONParser",
    "rest_framework.parsers.FormParser",
    "rest_framework.parsers.MultiPartParser",
]

# --- faults: heartbeats, the work sweep, bounded publishing (labeling.services.work) -------------
# A running quality run or export build writes a heartbeat every LOUPE_HEARTBEAT_SECONDS; the work
# sweep (beat, every minute) re-queues one silent for LOUPE_HEARTBEAT_STALE_SECONDS, up to
# LOUPE_WORK_MAX_ATTEMPTS attempts in all, then marks it failed with the reason. Queued work not
# picked up for LOUPE_WORK_RESEND_SECONDS (its message lost, or never sent: broker down) is sent again.
LOUPE_HEARTBEAT_SECONDS = env.float("LOUPE_HEARTBEAT_SECONDS", default=15.0)
LOUPE_HEARTBEAT_STALE_SECONDS = env.float("LOUPE_HEARTBEAT_STALE_SECONDS", default=90.0)
LOUPE_WORK_MAX_ATTEMPTS = env.int("LOUPE_WORK_MAX_ATTEMPTS", default=3)
LOUPE_WORK_RESEND_SECONDS = env.float("LOUPE_WORK_RESEND_SECONDS", default=60.0)
# Tasks are acknowledged after they finish (CELERY_TASK_ACKS_LATE). On Redis, a message taken by a
# worker that dies is delivered again only after the visibility timeout, so it must exceed the longest
# task (a message redelivered while its task still runs would start a second copy). Redelivery is the
# slow backstop; the work sweep above is the fast path after a worker dies.
LOUPE_BROKER_VISIBILITY_TIMEOUT = env.int("LOUPE_BROKER_VISIBILITY_TIMEOUT", default=2 * LOUPE_QUALITY_RUN_TIMEOUT)
# Sending a task message never holds a request for long when the broker is down: a bounded connect
# timeout and one retry, then the caller records the message for the sweep (labeling.services.work).
LOUPE_BROKER_PUBLISH_TIMEOUT = env.float("LOUPE_BROKER_PUBLISH_TIMEOUT", default=2.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": LOUPE_BROKER_VISIBILITY_TIMEOUT,
    "socket_connect_timeout": LOUPE_BROKER_PUBLISH_TIMEOUT,
    # A broker that accepts connections but does not answer (hung): a worker's BRPOP answers every
    # second, so a reply this late means the broker is gone.
    "socket_timeout": LOUPE_BROKER_PUBLISH_TIMEOUT + 2,
}
CELERY_BROKER_CONNECTION_TIMEOUT = LOUPE_BROKER_PUBLISH_TIMEOUT
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
# A lost database connection answers 503 with Retry-After (seconds), not 500
# (common.http.database_unavailable).
LOUPE_DB_RETRY_AFTER_SECONDS = env.int("LOUPE_DB_RETRY_AFTER_SECONDS", default=2)
MIDDLEWARE.append("common.http.database_unavailable.DatabaseUnavailableMiddleware")  # last: sees a view's error first
