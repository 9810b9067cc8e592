"""Loupe settings: read once from the environment (12-factor), failing closed.

DEBUG is off unless asked for; outside DEBUG, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and
CELERY_BROKER_URL must be set. SQLite is the zero-setup default only when DEBUG is on.
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
TESTING = env.bool("LOUPE_TESTING", default="pytest" in sys.modules)


def _required(key, default_when_debug):
    if key in env.ENVIRON:
        return env.str(key)
    if DEBUG or TESTING:
        return default_when_debug
    raise ImproperlyConfigured(f"{key} must be set when DEBUG is off (see .env.example)")


SECRET_KEY = _required("SECRET_KEY", "insecure-dev-only-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if (DEBUG or TESTING) else [])
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
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "labeling",
    "bugqueue",
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
# PostgreSQL in production and CI; SQLite is the first-run default (DEBUG or tests only).
if "DATABASE_URL" in env.ENVIRON:
    DATABASES = {"default": env.db("DATABASE_URL")}
elif DEBUG or TESTING:
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
        # PostgreSQL's JIT compiles a query whose estimated cost passes jit_above_cost; Loupe's page
        # counts over a few hundred thousand rows pass it and run in tenths of a second, which JIT
        # made longer: the review queue's size (173k requests waiting) took 0.46 s, 0.14 s of it
        # compiling, against 0.18 s without. Quality runs' bulk reads had it off already.
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["options"] = (_options.get("options", "") + " -c jit=off").strip()
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # transactions belong to services
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
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
        if (DEBUG or TESTING)
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

WHITENOISE_USE_FINDERS = DEBUG or TESTING

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG and not TESTING)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG and not TESTING)

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="loupe@localhost")
LOUPE_BASE_URL = env.str("LOUPE_BASE_URL", default="")  # absolute links in mails (the weekly bug digest)

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "labeling.api.schema.LoupeAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "labeling.api.pagination.DefaultPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "labeling.api.errors.exception_handler",
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
CSRF_FAILURE_VIEW = "labeling.api.errors.csrf_failure"

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
elif DEBUG:
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
