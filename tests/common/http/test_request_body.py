"""Request bodies (common.http.request_body): a limit on every one, judged before it is read (413 in the
error shape), and chunked bodies read by servers that decode them, refused (411) by those that do not.
The chunked tests talk HTTP to real servers: the live test server (Django's runserver handler) and
gunicorn, as in production."""

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from labeling.models import Item, Project
from labeling.services.accounts import token_issue_login
from tests.input_world import client, error_of, input_world
from tests.labeling.factories import PASSWORD
from tests.rows import snapshot

ROOT = Path(__file__).resolve().parents[3]
JSON = "application/json"
MB = 1024 * 1024


class Unreadable(io.RawIOBase):
    """A request stream that fails the test if anything reads it."""

    def read(self, size=-1):
        raise AssertionError("the body was read")

    readline = read


@pytest.fixture
def world(db):
    return input_world()


def test_an_anonymous_huge_body_is_a_413_before_a_byte_is_read(world):
    before = snapshot()
    res = client().generic(
        "POST", "/api/auth/token", b"", content_type=JSON, CONTENT_LENGTH=str(300 * MB), **{"wsgi.input": Unreadable()}
    )
    error = error_of(res, 413)
    assert error["code"] == "too_large" and "1 MB (1,048,576 bytes)" in error["message"]
    assert snapshot() == before


def test_the_login_form_has_the_limit_too(world):
    before = snapshot()
    res = client().generic(
        "POST",
        "/login/",
        b"",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(300 * MB),
        **{"wsgi.input": Unreadable()},
    )
    assert error_of(res, 413)["code"] == "too_large"
    assert snapshot() == before


@pytest.mark.parametrize(
    "actor,method,path",
    [
        ("anon", "POST", "/api/auth/token"),
        ("manager", "PATCH", "/api/projects/{p}"),
        ("annotator", "POST", "/api/assignments/{a}/submit"),
        ("manager", "POST", "/api/bugs/{b}/comments"),
    ],
)
def test_small_endpoints_take_at_most_the_request_limit(world, actor, method, path):
    body = json.dumps({"name": "x" * MB}).encode()
    before = snapshot()
    res = client(world["users"][actor]).generic(method, path.format(**world["ids"]), body, content_type=JSON)
    assert error_of(res, 413)["code"] == "too_large"
    assert snapshot() == before


def test_ingestion_keeps_its_larger_limit_and_message(world, settings):
    settings.LOUPE_MAX_REQUEST_BYTES, settings.LOUPE_MAX_BATCH_BYTES = 1000, 5000
    c = client(world["users"]["manager"])
    items = f"/api/projects/{world['ids']['p']}/items"
    rows = [{"external_id": f"big-{n}", "payload": {"text": "x" * 100}} for n in range(20)]  # about 2,700 bytes
    assert c.generic("POST", items, json.dumps(rows), content_type=JSON).status_code == 201
    error = error_of(
        c.generic(
            "PATCH", f"/api/projects/{world['ids']['p']}", json.dumps({"description": "x" * 2000}), content_type=JSON
        ),
        413,
    )
    assert error["message"] == "A request body holds at most 1,000 bytes."
    before = snapshot()
    error = error_of(c.generic("POST", items, json.dumps(rows * 3), content_type=JSON), 413)
    assert error["message"] == "A batch body holds at most 5,000 bytes. Split it."
    assert snapshot() == before


@pytest.mark.parametrize("length", ["lots", "-5"])
def test_a_content_length_that_is_not_a_size_is_a_400(world, length):
    res = client().generic("POST", "/api/auth/token", b"{}", content_type=JSON, CONTENT_LENGTH=length)
    assert error_of(res, 400)["message"] == "Content-Length must be a number of bytes."


# --- chunked bodies, in process: the WSGI environ each kind of server gives -----------------------


def chunked(world, actor, method, path, body: bytes, *, terminated=True, content_type=JSON):
    extra = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body)}
    if terminated:
        extra["wsgi.input_terminated"] = True  # what gunicorn says of a body it decodes
    return client(world["users"][actor]).generic(
        method, path.format(**world["ids"]), b"", content_type=content_type, **extra
    )


def test_chunked_body_is_read_where_the_server_decodes_it(world):
    res = chunked(world, "manager", "PATCH", "/api/projects/{p}", b'{"name": "Renamed by a chunked PATCH"}')
    assert res.status_code == 200, res.content
    assert Project.objects.get(pk=world["ids"]["p"]).name == "Renamed by a chunked PATCH"
    lines = b'{"external_id": "c1", "payload": {}}\n{"external_id": "c2", "payload": {}}\n'
    res = chunked(world, "manager", "POST", "/api/projects/{p}/items", lines, content_type="application/x-ndjson")
    assert res.status_code == 201 and Item.objects.filter(external_id__in=["c1", "c2"]).count() == 2


def test_chunked_body_over_the_limit_is_a_413_and_nothing_changes(world, settings):
    settings.LOUPE_MAX_REQUEST_BYTES = 100
    before = snapshot()
    res = chunked(world, "manager", "PATCH", "/api/projects/{p}", json.dumps({"name": "n" * 150}).encode())
    assert error_of(res, 413)["message"] == "A request body holds at most 100 bytes."
    assert snapshot() == before


def test_chunked_body_is_refused_where_the_server_cannot_decode_it(world):
    before = snapshot()
    res = chunked(world, "manager", "PATCH", "/api/projects/{p}", b'{"name": "x"}', terminated=False)
    assert error_of(res, 411)["code"] == "length_required"
    assert snapshot() == before


# --- chunked bodies over real HTTP --------------------------------------------------------------


def send_chunked(host, port, method, path, parts, headers):
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request(
            method, path, body=iter(parts), headers={**headers, "Transfer-Encoding": "chunked"}, encode_chunked=True
        )
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def token_for(user) -> dict:
    return {"Authorization": f"Token {token_issue_login(user=user)[1]}", "Content-Type": JSON}


@pytest.mark.django_db(transaction=True)
def test_live_test_server_refuses_chunked_bodies_with_411(live_server):
    world = input_world()
    host, port = live_server.thread.host, live_server.thread.port
    headers = token_for(world["users"]["manager"])
    before = snapshot()
    status, body = send_chunked(
        host, port, "PATCH", f"/api/projects/{world['ids']['p']}", [b'{"name": ', b'"x"}'], headers
    )
    assert status == 411 and json.loads(body)["error"]["code"] == "length_required"
    assert snapshot() == before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


@pytest.fixture
def gunicorn(transactional_db):
    """gunicorn (sync worker, as in production) serving the test database on a free local port."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url(), LOUPE_TESTING="true", CELERY_TASK_ALWAYS_EAGER="true")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Traceback" not in (out or ""), out


def test_gunicorn_reads_chunked_bodies_and_limits_them(gunicorn):
    world = input_world()
    host, port = gunicorn
    headers = token_for(world["users"]["manager"])
    project = f"/api/projects/{world['ids']['p']}"

    status, body = send_chunked(host, port, "PATCH", project, [b'{"name": ', b'"Renamed in chunks"}'], headers)
    assert status == 200, body
    assert json.loads(body)["name"] == "Renamed in chunks" == Project.objects.get(pk=world["ids"]["p"]).name

    lines = [b'{"external_id": "g1", "payload": {}}\n', b'{"external_id": "g2", "payload": {}}\n']
    status, body = send_chunked(
        host, port, "POST", project + "/items", lines, {**headers, "Content-Type": "application/x-ndjson"}
    )
    assert status == 201, body

    before = snapshot()
    big = [b'{"description": "'] + [b"x" * 65536] * 20 + [b'"}']  # 1.25 MB, over the 1 MB limit
    status, body = send_chunked(host, port, "PATCH", project, big, headers)
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"
    status, body = send_chunked(host, port, "POST", "/api/auth/token", big, {"Content-Type": JSON})
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"
    assert snapshot() == before

    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request(
        "POST",
        "/api/auth/token",
        body=json.dumps({"username": world["users"]["manager"].username, "password": PASSWORD}),
        headers={"Content-Type": JSON},
    )
    assert conn.getresponse().status == 200
    conn.close()
