"""A database connection dropped during a request (pg_terminate_backend on the very backend the
request uses) answers 503 with Retry-After, in the error shape for the API and as a short page
elsewhere; nothing is half-written, and the next request reconnects and succeeds."""

import time

import psycopg
import pytest
from django.db import connection
from django.test import Client

from labeling.models import Annotation
from labeling.services.queue.claim import assignment_claim_next
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member
from tests.private_broker import database_url


def request_finished():
    """What Django does at the end of every request (the test client leaves it out): a connection that
    saw errors and is no longer usable is closed, so the next request opens a new one."""
    connection.close_if_unusable_or_obsolete()


def terminate_own_backend_at(matches):
    """An execute wrapper: before the first statement for which `matches(sql)` is true, the backend of
    the connection running it is terminated from another connection (and gone), then the statement runs."""
    fired = []

    def wrapper(execute, sql, params, many, context):
        if not fired and matches(sql):
            fired.append(sql)
            pid = context["connection"].connection.info.backend_pid
            with psycopg.connect(database_url(), autocommit=True) as admin:
                assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
                deadline = time.monotonic() + 10
                while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                    assert time.monotonic() < deadline, "the terminated backend did not go away"
                    time.sleep(0.02)
        return execute(sql, params, many, context)

    wrapper.fired = fired
    return wrapper


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["first statement", "inside the submit transaction"])
def test_a_dropped_connection_during_a_submit_answers_503_and_the_retry_stores_it(postgres_tx, where):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    annotator = add_member(project, UserFactory())
    project.items.create(external_id="a", required_annotations=1)
    claim = assignment_claim_next(project=project, annotator=annotator)
    api = client_for(annotator)
    url = f"/api/assignments/{claim.assignment_id}/submit"
    matches = (
        (lambda sql: True) if where == "first statement" else (lambda sql: 'INSERT INTO "labeling_annotation"' in sql)
    )
    connection.health_check_done = True  # the connection was fine when the request began
    drop = terminate_own_backend_at(matches)
    with connection.execute_wrapper(drop):
        res = api.post(url, {"label": "pos"}, format="json")
    request_finished()
    assert drop.fired
    assert res.status_code == 503, res.content
    assert res["Content-Type"] == "application/json"
    assert res.json()["error"]["code"] == "database_unavailable" and res.json()["error"]["message"]
    assert int(res["Retry-After"]) > 0
    assert not Annotation.objects.filter(item__project=project).exists()  # rolled back with the connection

    again = api.post(url, {"label": "pos"}, format="json")
    assert again.status_code == 201, again.content
    assert Annotation.objects.filter(item__project=project).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_page_answers_a_friendly_503(postgres_tx):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    browser = Client()
    browser.force_login(manager)
    connection.health_check_done = True
    drop = terminate_own_backend_at(lambda sql: True)
    with connection.execute_wrapper(drop):
        res = browser.get(f"/projects/{project.pk}/")
    request_finished()
    assert res.status_code == 503 and int(res["Retry-After"]) > 0
    assert res["Content-Type"].startswith("text/html") and b"Back in a moment" in res.content
    assert browser.get(f"/projects/{project.pk}/").status_code == 200
