"""Settings fail closed: run settings in a subprocess with a controlled environment."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = secrets.token_urlsafe(50)  # what .env.example tells to generate


def load(env_overrides):
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DEBUG",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "LOUPE_TESTING",
            "CELERY_TASK_ALWAYS_EAGER",
            "LOUPE_DEMO",
        )
    }
    env.update(env_overrides)
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup(); "
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER, "
        "s.DATABASES['default'].get('OPTIONS', {}).get('transaction_mode'))"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_debug_is_off_by_default_and_production_needs_every_required_key():
    res = load({})
    assert res.returncode != 0 and "SECRET_KEY must be set" in res.stderr
    full = {
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": "loupe.example",
        "DATABASE_URL": "postgres://u@h/db",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    }
    ok = load(full)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split()[:4] == ["False", "django.db.backends.postgresql", "redis://127.0.0.1:6379/0", "False"]
    for key in full:
        res = load({k: v for k, v in full.items() if k != key})
        assert res.returncode != 0 and f"{key} must be set" in res.stderr, key


def test_debug_defaults_to_sqlite_immediate_and_never_silently_runs_tasks_inline():
    res = load({"DEBUG": "true"})
    assert res.returncode == 0, res.stderr
    debug, engine, broker, eager, mode = res.stdout.split()
    assert engine == "django.db.backends.sqlite3" and mode == "IMMEDIATE"
    assert eager == "False" and broker.startswith("redis://")


def test_in_process_tasks_only_when_asked():
    res = load({"DEBUG": "true", "CELERY_TASK_ALWAYS_EAGER": "true"})
    assert res.stdout.split()[3] == "True"


@pytest.mark.parametrize("flag", ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"])
def test_secure_cookies_outside_debug(flag):
    full = {
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": "h",
        "DATABASE_URL": "sqlite:///x.db",
        "CELERY_BROKER_URL": "memory://",
    }
    code = (
        "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='config.settings';django.setup();"
        f"from django.conf import settings as s;print(s.{flag})"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "LOUPE_TESTING")}
    env.update(full)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr


def test_postgresql_connections_run_without_jit_unless_asked(postgres):
    """Page counts over a few hundred thousand rows passed jit_above_cost and ran slower compiled."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SHOW jit")
        assert cur.fetchone()[0] == "off"
    base = {"DEBUG": "true", "DATABASE_URL": "postgres://u@h/db"}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup(); "
        "from django.conf import settings as s; print(repr(s.DATABASES['default'].get('OPTIONS', {}).get('options')))"
    )
    for extra, expected in (({}, "'-c jit=off'"), ({"LOUPE_PG_JIT": "true"}, "None")):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LOUPE_PG_JIT")}
        res = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env={**env, **base, **extra}, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == expected


# --- deployment security: insecure keys refused, HTTPS settings from the environment ---------------

PROD = {
    "ALLOWED_HOSTS": "loupe.example",
    "DATABASE_URL": "postgres://u@h/db",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}


def settings_value(env_overrides, expr):
    """Evaluate `expr` (with `s` the settings) in a fresh process with only `env_overrides` set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE_", "DEBUG", "LOUPE_"))
        and k not in PROD
        and k not in ("SECRET_KEY", "CELERY_TASK_ALWAYS_EAGER")
    }
    env.update(env_overrides)
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup(); "
        f"from django.conf import settings as s; print(repr({expr}))"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize(
    "key",
    [
        "change-me",  # .env.example's placeholder
        "django-insecure-" + secrets.token_urlsafe(50),  # Django's prefix for generated development keys
        secrets.token_urlsafe(50)[:49],  # shorter than 50 characters
        "abcd" * 20,  # fewer than 5 distinct characters
    ],
    ids=["placeholder", "insecure-prefix", "short", "few-distinct"],
)
def test_an_insecure_secret_key_is_refused_outside_debug(key):
    res = settings_value({**PROD, "SECRET_KEY": key}, "s.SECRET_KEY")
    assert res.returncode != 0 and "SECRET_KEY is insecure" in res.stderr, res.stderr
    ok = settings_value({**PROD, "SECRET_KEY": STRONG_KEY}, "s.SECRET_KEY")
    assert ok.returncode == 0 and STRONG_KEY in ok.stdout, ok.stderr
    for local in ({"DEBUG": "true"}, {"LOUPE_DEMO": "true"}):  # development and the demo on a laptop
        res = settings_value({**PROD, **local, "SECRET_KEY": key}, "s.SECRET_KEY")
        assert res.returncode == 0, res.stderr


def test_https_settings_come_from_the_environment_and_default_off():
    expr = (
        "(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, "
        "s.SECURE_PROXY_SSL_HEADER)"
    )
    base = {**PROD, "SECRET_KEY": STRONG_KEY}
    res = settings_value(base, expr)
    assert res.stdout.strip() == "(False, 0, False, False, None)", res.stderr
    res = settings_value(
        {
            **base,
            "SECURE_SSL_REDIRECT": "true",
            "SECURE_HSTS_SECONDS": "3600",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
            "SECURE_HSTS_PRELOAD": "true",
            "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO, https",
        },
        expr,
    )
    assert res.stdout.strip() == "(True, 3600, True, True, ('HTTP_X_FORWARDED_PROTO', 'https'))", res.stderr


@pytest.mark.parametrize(
    "value", ["X-Forwarded-Proto,https", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_PROTO,https,x"]
)
def test_a_proxy_ssl_header_that_could_never_match_is_refused(value):
    res = settings_value(
        {**PROD, "SECRET_KEY": STRONG_KEY, "SECURE_PROXY_SSL_HEADER": value}, "s.SECURE_PROXY_SSL_HEADER"
    )
    assert res.returncode != 0 and "SECURE_PROXY_SSL_HEADER must be" in res.stderr, res.stderr


def test_env_example_passes_check_deploy_once_given_a_generated_key():
    """.env.example, read as settings read a .env file, leaves `check --deploy` nothing to report; its
    placeholder SECRET_KEY is refused."""
    # As in a deployment: no test-only switch (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LOUPE_TESTING", "DEBUG", "LOUPE_DEMO", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    code = (
        "import environ, os, sys; environ.Env.read_env('.env.example'); os.environ.update(sys.argv[1:] and "
        "{'SECRET_KEY': sys.argv[1]} or {}); os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('check', deploy=True, fail_level='DEBUG')"
    )
    res = subprocess.run([sys.executable, "-c", code, STRONG_KEY], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "no issues" in res.stdout + res.stderr
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "SECRET_KEY is insecure" in res.stderr


def test_the_demo_keeps_debug_off_with_local_defaults():
    res = settings_value(
        {"LOUPE_DEMO": "true"},
        "(s.DEBUG, s.DATABASES['default']['ENGINE'], s.WHITENOISE_USE_FINDERS, s.SESSION_COOKIE_SECURE)",
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(False, 'django.db.backends.sqlite3', True, False)"
