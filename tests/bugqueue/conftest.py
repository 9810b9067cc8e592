import pytest


@pytest.fixture
def eager_celery():
    """Run tasks in-process for one test (restored afterwards). The app reads Django settings with
    the CELERY_ namespace, so the namespaced keys are the ones to change."""
    from config.celery import app

    keys = ("CELERY_TASK_ALWAYS_EAGER", "CELERY_TASK_EAGER_PROPAGATES")
    before = {k: app.conf.get(k) for k in keys}
    for k in keys:
        app.conf[k] = True
    assert app.conf.task_always_eager
    yield app
    for k, v in before.items():
        app.conf[k] = v


@pytest.fixture(autouse=True)
def curated_tags(request):
    """The tag list comes from a data migration, which transactional tests (anyone's) flush away:
    put it back before each test of this package."""
    transactional = any(name in request.fixturenames for name in ("transactional_db", "postgres_tx", "live_server"))
    marker = request.node.get_closest_marker("django_db")
    if marker and marker.kwargs.get("transaction"):
        transactional = True
    request.getfixturevalue("transactional_db" if transactional else "db")
    from bugqueue.services.tags import tags_seed

    tags_seed()
