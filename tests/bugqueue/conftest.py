import pytest


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
