import csv
import io
import json
import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from labeling.models import Role
from labeling.selectors import export as selectors_export
from labeling.selectors.export import cursor_encode
from labeling.services.accounts import token_create_service, token_issue_login
from labeling.services.export import export_grant_add
from labeling.services.ground_truth import ground_truth_set
from tests.conftest import client_for
from tests.labeling.factories import ItemFactory, ProjectFactory, UserFactory, add_member, make_items, resolve

pytestmark = pytest.mark.django_db


def url(project, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/projects/{project.pk}/labels" + (f"?{query}" if query else "")


def body_of(res) -> str:
    return b"".join(res.streaming_content).decode() if res.streaming else res.content.decode()


def jsonl(res):
    """(rows, trailer) of a JSON Lines response; the trailer is the last line."""
    lines = body_of(res).splitlines()
    return [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])


def pull_all(client, project, since="0", **params):
    """Page with format=json until a page is empty; returns the rows and the final cursor."""
    rows, cursor = [], since
    while True:
        res = client.get(url(project, since=cursor, **params))
        assert res.status_code == 200, res.content
        page = res.json()
        rows += page["results"]
        assert page["next_cursor"] == res["X-Next-Cursor"]
        if not page["results"]:
            return rows, page["next_cursor"]
        cursor = page["next_cursor"]


# --- rows, paging, streaming ----------------------------------------------------------------------


def test_json_page_rows_and_cursor(project, user):
    ann = UserFactory(username="ann")
    item = ItemFactory(project=project, external_id="ticket-1")
    ground_truth_set(item=item, label="pos", method="unanimous", annotators=[ann.pk], score=0.93, model_version="m-7")
    ground_truth_set(item=item, label="neg", method="adjudicated")
    res = client_for(user).get(url(project))
    assert res.status_code == 200 and res["Content-Type"] == "application/json"
    page = res.json()
    first, second = page["results"]
    assert list(first) == [
        "seq",
        "external_id",
        "label",
        "previous_label",
        "method",
        "score",
        "model_version",
        "annotators",
        "changed_at",
    ]
    assert first == {
        **first,
        "seq": 1,
        "external_id": "ticket-1",
        "label": "pos",
        "previous_label": None,
        "method": "unanimous",
        "score": 0.93,
        "model_version": "m-7",
        "annotators": ["ann"],
    }
    assert first["changed_at"].endswith("Z")
    assert "model_version" not in second and second["previous_label"] == "pos" and second["score"] is None
    assert page["next_cursor"] == cursor_encode(project_id=project.pk, seq=2) and page["has_more"] is False
    # Nothing new: an empty page, the same cursor.
    again = client_for(user).get(url(project, since=page["next_cursor"])).json()
    assert again == {"results": [], "next_cursor": page["next_cursor"], "has_more": False}


def test_json_pages_with_limit_deliver_each_change_once_in_order(project, user):
    resolve(project, make_items(project, 25))
    c = client_for(user)
    first = c.get(url(project, limit=10)).json()
    assert [r["seq"] for r in first["results"]] == list(range(1, 11)) and first["has_more"] is True
    rows, cursor = pull_all(c, project, limit=10)
    assert [r["seq"] for r in rows] == list(range(1, 26))
    assert cursor == cursor_encode(project_id=project.pk, seq=25)


def test_since_zero_empty_history(project, user):
    res = client_for(user).get(url(project, since=0))
    assert res.json() == {"results": [], "next_cursor": cursor_encode(project_id=project.pk, seq=0), "has_more": False}
    rows, trailer = jsonl(client_for(user).get(url(project, format="jsonl")))
    assert rows == [] and trailer == {"next_cursor": cursor_encode(project_id=project.pk, seq=0), "rows": 0}


def test_jsonl_streams_many_more_rows_than_one_page_in_order(project, user, monkeypatch):
    monkeypatch.setattr(selectors_export, "PAGE_ROWS", 100)
    resolve(project, make_items(project, 1050))
    res = client_for(user).get(url(project, format="jsonl"))
    assert res.status_code == 200 and res.streaming
    assert res["Content-Type"].startswith("application/x-ndjson")
    chunks = list(res.streaming_content)
    assert len(chunks) == 11 + 1  # one chunk per keyset page (10 full + 1 partial) and the trailer
    lines = b"".join(chunks).decode().splitlines()
    rows, trailer = [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])
    assert [r["seq"] for r in rows] == list(range(1, 1051))
    assert [r["external_id"] for r in rows[:2]] == ["it-000000", "it-000001"]
    assert trailer == {"next_cursor": res["X-Next-Cursor"], "rows": 1050}
    assert res["X-Next-Cursor"] == cursor_encode(project_id=project.pk, seq=1050)


def test_stream_at_the_default_page_size_spans_several_pages(postgres, project, user):
    n = selectors_export.PAGE_ROWS * 2 + 123
    resolve(project, make_items(project, n), batch=5000)
    res = client_for(user).get(url(project, format="jsonl"))
    chunks = list(res.streaming_content)
    assert len(chunks) == 3 + 1
    lines = b"".join(chunks).splitlines()
    assert len(lines) == n + 1
    seqs = [json.loads(line)["seq"] for line in lines[:-1]]
    assert seqs == list(range(1, n + 1))


def test_stream_limit_bounds_rows_and_cursor(project, user):
    resolve(project, make_items(project, 30))
    c = client_for(user)
    rows, trailer = jsonl(c.get(url(project, format="jsonl", limit=12)))
    assert [r["seq"] for r in rows] == list(range(1, 13))
    assert trailer["next_cursor"] == cursor_encode(project_id=project.pk, seq=12)
    rows, trailer = jsonl(c.get(url(project, format="jsonl", since=trailer["next_cursor"])))
    assert [r["seq"] for r in rows] == list(range(13, 31)) and trailer["rows"] == 18


def test_header_cursor_is_fixed_before_streaming_and_matches_the_body(project, user, monkeypatch):
    monkeypatch.setattr(selectors_export, "PAGE_ROWS", 10)
    items = make_items(project, 40)
    resolve(project, items[:25])
    res = client_for(user).get(url(project, format="jsonl"))
    stream = iter(res.streaming_content)
    first = next(stream)
    resolve(project, items[25:])  # committed while the client is still reading
    rest = b"".join(stream)
    lines = (first + rest).decode().splitlines()
    assert [json.loads(x)["seq"] for x in lines[:-1]] == list(range(1, 26))
    assert json.loads(lines[-1])["next_cursor"] == res["X-Next-Cursor"] == cursor_encode(project_id=project.pk, seq=25)
    # The next pull starts exactly there.
    rows, _ = jsonl(client_for(user).get(url(project, format="jsonl", since=res["X-Next-Cursor"])))
    assert [r["seq"] for r in rows] == list(range(26, 41))


def test_csv_is_valid_with_tricky_values_and_unicode(project, user):
    names = ["zoë", "李雷", "o'neil"]
    people = [UserFactory(username=n) for n in names]
    tricky = [
        ("a,b", "label,with,commas"),
        ('say "hi"', 'quote"d'),
        ("line\nbreak", "naïve-ünïcode"),
        ("emoji 🐱", "猫"),
        ("#hash", "=SUM(A1)"),
        ("  spaced  ", "x\r\ny"),
    ]
    for i, (ext, label) in enumerate(tricky):
        item = ItemFactory(project=project, external_id=ext)
        ground_truth_set(
            item=item,
            label=label,
            method="consensus",
            score=0.5 + i / 100,
            annotators=[p.pk for p in people[: i % 3 + 1]],
        )
    c = client_for(user)
    res = c.get(url(project, format="csv"))
    assert res["Content-Type"] == "text/csv; charset=utf-8"
    text = body_of(res)
    assert text.encode("utf-8").decode("utf-8") == text
    records = list(csv.reader(io.StringIO(text, newline="")))
    header, rows, trailer = records[0], records[1:-1], records[-1]
    assert header == [
        "seq",
        "external_id",
        "label",
        "previous_label",
        "method",
        "score",
        "model_version",
        "annotators",
        "changed_at",
    ]
    assert len(trailer) == 1 and trailer[0] == f"#next_cursor={res['X-Next-Cursor']};rows=6"
    as_json = c.get(url(project)).json()["results"]
    assert len(rows) == len(as_json) == 6
    for rec, obj in zip(rows, as_json):
        assert rec[0] == str(obj["seq"]) and rec[1] == obj["external_id"] and rec[2] == obj["label"]
        assert float(rec[5]) == obj["score"] and rec[7].split(";") == obj["annotators"] and rec[8] == obj["changed_at"]
    assert [r[1] for r in rows] == [e for e, _ in tricky] and [r[2] for r in rows] == [lab for _, lab in tricky]
    assert rows[0][7] == "zoë" and rows[1][7] == "zoë;李雷"
    # Text is always quoted, so the trailer is the only record starting with "#" and pandas can skip it.
    assert [line for line in text.split("\r\n") if line.startswith("#")] == [trailer[0]]
    import pandas as pd

    df = pd.read_csv(io.StringIO(text), comment="#", keep_default_na=False)
    assert list(df["external_id"]) == [e for e, _ in tricky] and list(df["label"]) == [lab for _, lab in tricky]
    assert list(df["seq"]) == [1, 2, 3, 4, 5, 6] and df["score"].dtype.kind == "f"


def test_deleted_annotator_keeps_their_id_and_usernames_cost_one_query(project, user, django_assert_max_num_queries):
    gone = UserFactory()
    gone_id = gone.pk
    people = [UserFactory() for _ in range(5)]
    items = make_items(project, 60)
    for i, it in enumerate(items):
        ground_truth_set(
            item=it, label="pos", method="consensus", annotators=[people[i % 5].pk, people[(i + 1) % 5].pk]
        )
    ground_truth_set(item=ItemFactory(project=project), label="neg", method="consensus", annotators=[gone_id])
    gone.delete()
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {token_issue_login(user=user)[1]}")
    # token, membership, project, head, page, usernames
    with django_assert_max_num_queries(6):
        res = c.get(url(project, limit=100))
    rows = res.json()["results"]
    assert len(rows) == 61 and rows[0]["annotators"] == [people[0].username, people[1].username]
    assert rows[-1]["annotators"] == [gone_id]


def test_annotator_cache_stays_bounded_and_correct(project, user, monkeypatch):
    monkeypatch.setattr(selectors_export.AnnotatorCache, "MAX", 3)
    monkeypatch.setattr(selectors_export, "PAGE_ROWS", 4)
    people = [UserFactory() for _ in range(6)]
    for i, it in enumerate(make_items(project, 20)):
        ground_truth_set(
            item=it, label="pos", method="consensus", annotators=[people[i % 6].pk, people[(i * 7) % 6].pk]
        )
    rows, _ = jsonl(client_for(user).get(url(project, format="jsonl")))
    assert [r["annotators"] for r in rows] == [
        [people[i % 6].username, people[(i * 7) % 6].username] for i in range(20)
    ]


# --- compact ---------------------------------------------------------------------------------------


def test_compact_returns_the_latest_state_of_each_changed_item(project, user):
    a, b, c_ = make_items(project, 3)
    ground_truth_set(item=a, label="pos", method="consensus")  # 1
    ground_truth_set(item=b, label="pos", method="consensus")  # 2
    ground_truth_set(item=a, label="neg", method="adjudicated")  # 3
    ground_truth_set(item=c_, label="neu", method="consensus")  # 4
    ground_truth_set(item=a, label="neu", method="adjudicated")  # 5
    ground_truth_set(item=b, label="neg", method="adjudicated")  # 6
    client = client_for(user)
    full = client.get(url(project, compact="true")).json()
    assert [(r["seq"], r["external_id"], r["label"]) for r in full["results"]] == [
        (4, c_.external_id, "neu"),
        (5, a.external_id, "neu"),
        (6, b.external_id, "neg"),
    ]
    assert full["next_cursor"] == cursor_encode(project_id=project.pk, seq=6)
    # Since seq 4: only a (5) and b (6) changed after it.
    since4 = client.get(url(project, compact="true", since=cursor_encode(project_id=project.pk, seq=4))).json()
    assert [r["seq"] for r in since4["results"]] == [5, 6]
    # Streams and small json pages compact the same way.
    rows, trailer = jsonl(client.get(url(project, compact="true", format="jsonl")))
    assert [r["seq"] for r in rows] == [4, 5, 6] and trailer["rows"] == 3
    rows, cursor = pull_all(client, project, compact="true", limit=1)
    assert [r["seq"] for r in rows] == [4, 5, 6] and cursor == full["next_cursor"]
    csv_rows = list(csv.reader(io.StringIO(body_of(client.get(url(project, compact="true", format="csv"))))))
    assert [r[0] for r in csv_rows[1:-1]] == ["4", "5", "6"]


def test_compact_paging_with_many_rewrites_matches_the_final_state(project, user):
    items = make_items(project, 40)
    for round_ in range(3):
        resolve(project, items[round_ * 5 :], offset=round_ + 1)
    client = client_for(user)
    rows, _ = pull_all(client, project, compact="true", limit=7)
    latest = {}
    for r in client.get(url(project, limit=1000)).json()["results"]:
        latest[r["external_id"]] = r
    assert len(rows) == len({r["external_id"] for r in rows}) == 40
    assert {r["external_id"]: r["seq"] for r in rows} == {k: v["seq"] for k, v in latest.items()}
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("since", ["garbage", "lc1_", "lc1_AAAA", "12", "-1", "lc1_" + "x" * 90])
def test_bad_cursor_is_400(project, user, since):
    res = client_for(user).get(url(project, since=since))
    assert res.status_code == 400
    assert res.json()["error"]["code"] == "bad_cursor" and "since" in res.json()["error"]["fields"]


def test_tampered_cursor_is_400(project, user):
    resolve(project, make_items(project, 3))
    good = cursor_encode(project_id=project.pk, seq=2)
    import base64

    raw = base64.urlsafe_b64decode(good[4:] + "=" * (-len(good[4:]) % 4)).decode()
    forged = "lc1_" + base64.urlsafe_b64encode(raw.replace(".2.", ".1.", 1).encode()).rstrip(b"=").decode()
    assert client_for(user).get(url(project, since=good)).status_code == 200
    assert client_for(user).get(url(project, since=forged)).json()["error"]["code"] == "bad_cursor"


def test_cursor_of_another_project_is_400(project, user):
    other = ProjectFactory(creator=user)
    resolve(other, make_items(other, 2))
    res = client_for(user).get(url(project, since=cursor_encode(project_id=other.pk, seq=1)))
    assert res.status_code == 400 and res.json()["error"]["code"] == "foreign_cursor"


def test_cursor_past_the_end_is_400(project, user):
    resolve(project, make_items(project, 2))
    res = client_for(user).get(url(project, since=cursor_encode(project_id=project.pk, seq=3), format="jsonl"))
    assert res.status_code == 400 and res.json()["error"]["code"] == "cursor_ahead"


@pytest.mark.parametrize(
    "params,field",
    [
        ({"format": "xml"}, "format"),
        ({"limit": 0}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": 10001}, "limit"),
        ({"compact": "maybe"}, "compact"),
    ],
)
def test_bad_parameters_are_400(project, user, params, field):
    res = client_for(user).get(url(project, **params))
    assert res.status_code == 400 and field in res.json()["error"]["fields"]


# --- permissions ------------------------------------------------------------------------------------


def test_permissions(project, user):
    resolve(project, make_items(project, 2))
    annotator = add_member(project, role=Role.ANNOTATOR)
    reviewer = add_member(project, role=Role.REVIEWER)
    assert APIClient().get(url(project)).status_code == 401
    assert client_for(UserFactory()).get(url(project)).status_code == 404
    assert client_for(UserFactory()).get("/api/projects/999999/labels").status_code == 404
    for member in (annotator, reviewer):
        res = client_for(member).get(url(project, format="jsonl"))
        assert res.status_code == 403 and res.json()["error"]["code"] == "forbidden"
    assert client_for(user).get(url(project)).status_code == 200
    assert client_for(UserFactory(is_staff=True)).get(url(project)).status_code == 200


def test_export_grant_lets_a_service_account_pull_with_its_token_and_nothing_else(project, user):
    resolve(project, make_items(project, 3))
    bot = UserFactory(username="training-pipeline")
    _, token = token_create_service(user=bot, name="training pipeline", expires_in=None, actor=user)
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert c.get(url(project)).status_code == 404
    res = client_for(user).post(f"/api/projects/{project.pk}/export-grants", {"username": bot.username}, format="json")
    assert res.status_code == 201 and res.json()["username"] == bot.username
    rows, trailer = jsonl(c.get(url(project, format="jsonl")))
    assert len(rows) == 3
    assert c.get(f"/api/projects/{project.pk}/items").status_code == 404  # the grant allows exports only
    assert c.get(f"/api/projects/{project.pk}/export-grants").status_code == 404
    # An annotator with a grant may export; granting is for managers only.
    annotator = add_member(project, role=Role.ANNOTATOR)
    assert (
        client_for(annotator)
        .post(f"/api/projects/{project.pk}/export-grants", {"username": bot.username}, format="json")
        .status_code
        == 403
    )
    export_grant_add(project=project, username=annotator.username, actor=user)
    assert client_for(annotator).get(url(project)).status_code == 200
    assert client_for(user).get(f"/api/projects/{project.pk}/export-grants").json()[0]["username"] == bot.username
    assert client_for(user).delete(f"/api/projects/{project.pk}/export-grants/{bot.username}").status_code == 204
    assert c.get(url(project)).status_code == 404
    assert client_for(user).delete(f"/api/projects/{project.pk}/export-grants/{bot.username}").status_code == 404
    assert (
        client_for(user)
        .post(f"/api/projects/{project.pk}/export-grants", {"username": "nobody"}, format="json")
        .status_code
        == 400
    )


# --- streaming holds no transaction, lock or cursor --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_half_read_stream_holds_no_transaction_and_blocks_no_writer(postgres_tx, monkeypatch):
    from psycopg.pq import TransactionStatus

    monkeypatch.setattr(selectors_export, "PAGE_ROWS", 50)
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    items = make_items(project, 300)
    resolve(project, items[:200])
    res = client_for(manager).get(url(project, format="jsonl"))
    stream = iter(res.streaming_content)
    next(stream)
    next(stream)  # two pages read, the client pauses
    assert not connection.in_atomic_block
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_cursors")
        assert cur.fetchone()[0] == 0  # no server-side cursor kept open between pages
    errors = []

    def writer():
        try:
            resolve(project, items[200:], labels=("neu",))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    t = threading.Thread(target=writer)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive() and not errors  # the writer committed while the stream was paused
    res.close()  # the client goes away mid-stream
    # request_finished may close the connection (older than CONN_MAX_AGE); if kept, it is idle.
    assert connection.connection is None or connection.connection.info.transaction_status == TransactionStatus.IDLE
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%%'"
        )
        assert cur.fetchone()[0] == 0
    # The connection still works for the next request.
    rows, trailer = jsonl(client_for(manager).get(url(project, format="jsonl")))
    assert [r["seq"] for r in rows] == list(range(1, 301))


def test_export_page_shows_grant_holders_to_managers_only_as_the_api_does(project, user, client):
    """Grants are the managers' business: a grantee's page names no other holder, and the API that
    lists them answers the grantee 404 (no grant list exists for them)."""
    bots = [UserFactory(username=f"pipeline-{i}") for i in range(2)]
    for bot in bots:
        export_grant_add(project=project, username=bot.username, actor=user)
    client.force_login(bots[0])
    page = client.get(f"/projects/{project.pk}/export")
    assert page.status_code == 200
    text = page.content.decode()
    assert "pipeline-1" not in text and "you (an export grant)" in text
    assert client_for(bots[0]).get(f"/api/projects/{project.pk}/export-grants").status_code == 404
    client.force_login(user)
    text = client.get(f"/projects/{project.pk}/export").content.decode()
    assert "pipeline-0" in text and "pipeline-1" in text
    assert [g["username"] for g in client_for(user).get(f"/api/projects/{project.pk}/export-grants").json()] == [
        "pipeline-0",
        "pipeline-1",
    ]
