"""Settings fail closed: run settings in a subprocess with a controlled environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load(env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in (
        "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL", "LOUPE_TESTING",
        "CELERY_TASK_ALWAYS_EAGER")}
    env.update(env_overrides)
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup(); "
            "from django.conf import settings as s; "
            "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER, "
            "s.DATABASES['default'].get('OPTIONS', {}).get('transaction_mode'))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_debug_is_off_by_default_and_production_needs_every_required_key():
    res = load({})
    assert res.returncode != 0 and "SECRET_KEY must be set" in res.stderr
    full = {"SECRET_KEY": "x" * 40, "ALLOWED_HOSTS": "loupe.example", "DATABASE_URL": "postgres://u@h/db",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
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
    full = {"SECRET_KEY": "x" * 40, "ALLOWED_HOSTS": "h", "DATABASE_URL": "sqlite:///x.db", "CELERY_BROKER_URL": "memory://"}
    code = f"import django,os;os.environ['DJANGO_SETTINGS_MODULE']='config.settings';django.setup();from django.conf import settings as s;print(s.{flag})"
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
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup(); "
            "from django.conf import settings as s; print(repr(s.DATABASES['default'].get('OPTIONS', {}).get('options')))")
    for extra, expected in (({}, "'-c jit=off'"), ({"LOUPE_PG_JIT": "true"}, "None")):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LOUPE_PG_JIT")}
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, **base, **extra}, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == expected
