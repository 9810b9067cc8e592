"""Shared fixtures. Services (PostgreSQL, the broker, chromium) are real: when one is missing a test
that needs it skips with a message locally, and FAILS under CI=true."""

import os
import shutil

import pytest
from rest_framework.test import APIClient

from tests.labeling.factories import ProjectFactory, UserFactory

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, why: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture
def postgres(db):
    """Use in tests that need PostgreSQL semantics (row locks, SKIP LOCKED, real concurrency)."""
    from django.db import connection

    require(connection.vendor == "postgresql", "this test needs PostgreSQL (set DATABASE_URL=postgres://...)")
    return connection


@pytest.fixture
def postgres_tx(transactional_db):
    from django.db import connection

    require(connection.vendor == "postgresql", "this test needs PostgreSQL (set DATABASE_URL=postgres://...)")
    return connection


@pytest.fixture(scope="session")
def chromium_path():
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    require(os.path.exists(path), f"chromium is not installed at {path} (apt-get install -y chromium)")
    return path


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


@pytest.fixture
def project(db, user):
    return ProjectFactory(creator=user)


def client_for(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user=user)
    return c


@pytest.fixture
def eager_celery(settings):
    """Run Celery tasks in-process for one test, restored afterwards. The app reads Django settings
    with the CELERY_ namespace, so both the setting and the app's namespaced keys are changed."""
    from config.celery import app

    keys = ("CELERY_TASK_ALWAYS_EAGER", "CELERY_TASK_EAGER_PROPAGATES")
    before = {k: app.conf.get(k) for k in keys}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    for k in keys:
        app.conf[k] = True
    assert app.conf.task_always_eager
    yield app
    for k, v in before.items():
        app.conf[k] = v


# --- login lockout and rate limits keep their counts in the cache ------------------------------------
@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with no failed logins and no rate-limit history counted (the suite and its
    browser tests log in from 127.0.0.1 many times)."""
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True):
        cache.clear()
    yield
