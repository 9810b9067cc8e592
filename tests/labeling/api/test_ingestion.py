import json
import struct

import pytest
from django.test import override_settings

from labeling.models import Item, Prediction
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PROBS = {"pos": 0.7, "neg": 0.2, "neu": 0.1}


def rows(n, start=0, **extra):
    return [
        {
            "external_id": f"e{i}",
            "payload": {"text": f"hello {i}"},
            "priority": i % 3,
            "prediction": {
                "model_version": "v1",
                "label": "pos",
                "probabilities": PROBS,
                "predicted_at": "2026-11-01T10:00:00Z",
            },
            **extra,
        }
        for i in range(start, start + n)
    ]


def post(client, project, body, content_type="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"/api/projects/{project.id}/items", data, content_type=content_type)


def test_ingest_creates_items_and_predictions(user, project):
    res = post(client_for(user), project, rows(50))
    assert res.status_code == 201, res.json()
    assert res.json() == {"created": 50, "updated": 0, "unchanged": 0, "checks": []}
    assert Item.objects.filter(project=project).count() == 50
    assert Prediction.objects.filter(item__project=project).count() == 50
    item = Item.objects.get(project=project, external_id="e4")
    assert item.priority == 1 and item.payload == {"text": "hello 4"}
    assert item.uncertainty == pytest.approx(0.3) and item.first_predicted_at.isoformat().startswith("2026-11-01T10:00")
    assert item.required_annotations == project.annotations_per_item


def test_probabilities_are_also_stored_as_numbers_in_label_order(user, project):
    """Prediction.vector: big-endian float64 in the project's label order, rewritten with the jsonb."""
    order = list(project.labels.order_by("position", "id").values_list("key", flat=True))
    c = client_for(user)
    post(c, project, rows(3))
    pred = Prediction.objects.get(item__project=project, item__external_id="e1")
    assert struct.unpack(f">{len(order)}d", bytes(pred.vector)) == tuple(PROBS[k] for k in order)
    changed = {"pos": 0.1, "neg": 0.3, "neu": 0.6}
    body = rows(1, start=1)
    body[0]["prediction"]["probabilities"] = changed
    assert post(c, project, body).json() == {"created": 0, "updated": 1, "unchanged": 0, "checks": []}
    pred.refresh_from_db()
    assert pred.probabilities == changed
    assert struct.unpack(f">{len(order)}d", bytes(pred.vector)) == tuple(changed[k] for k in order)


def test_resending_the_same_batch_changes_nothing_and_says_so(user, project):
    c = client_for(user)
    post(c, project, rows(20))
    before = list(Item.objects.filter(project=project).order_by("id").values_list("id", "updated_at"))
    res = post(c, project, rows(20))
    assert res.status_code == 200
    assert res.json() == {"created": 0, "updated": 0, "unchanged": 20, "checks": []}
    assert list(Item.objects.filter(project=project).order_by("id").values_list("id", "updated_at")) == before


def test_upsert_counts_created_updated_unchanged(user, project):
    c = client_for(user)
    post(c, project, rows(10))
    batch = rows(10)
    batch[0]["payload"] = {"text": "changed"}
    batch[1]["prediction"] = dict(batch[1]["prediction"], model_version="v2")  # new prediction row
    batch += rows(5, start=10)
    res = post(c, project, batch)
    assert res.json() == {"created": 5, "updated": 2, "unchanged": 8, "checks": []}
    assert Item.objects.get(project=project, external_id="e0").payload == {"text": "changed"}
    assert Prediction.objects.filter(item__external_id="e1", item__project=project).count() == 2
    assert Item.objects.filter(project=project).count() == 15


def test_prediction_is_one_row_per_item_and_model_version(user, project):
    c = client_for(user)
    post(c, project, rows(1))
    batch = rows(1)
    batch[0]["prediction"]["label"] = "neg"
    assert post(c, project, batch).json() == {"created": 0, "updated": 1, "unchanged": 0, "checks": []}
    assert list(Prediction.objects.filter(item__project=project).values_list("model_version", "label")) == [
        ("v1", "neg")
    ]


def test_json_lines(user, project):
    body = "\n".join(json.dumps(r) for r in rows(7)) + "\n"
    res = post(client_for(user), project, body, content_type="application/x-ndjson")
    assert res.status_code == 201 and res.json()["created"] == 7


BAD = [
    ({"external_id": "x", "payload": "not an object"}, "payload"),
    ({"external_id": "", "payload": {}}, "external_id"),
    ({"payload": {}}, "external_id"),
    ({"external_id": "x", "payload": {}, "prediction": {"model_version": "v1", "label": "nope"}}, "not a label"),
    (
        {
            "external_id": "x",
            "payload": {},
            "prediction": {"model_version": "v1", "label": "pos", "probabilities": {"pos": 0.5, "neg": 0.5}},
        },
        "cover",
    ),
    (
        {
            "external_id": "x",
            "payload": {},
            "prediction": {
                "model_version": "v1",
                "label": "pos",
                "probabilities": {"pos": 0.5, "neg": 0.3, "neu": 0.1},
            },
        },
        "sum to 1",
    ),
    (
        {
            "external_id": "x",
            "payload": {},
            "prediction": {"model_version": "v1", "label": "pos", "predicted_at": "yesterday"},
        },
        "predicted_at",
    ),
    ({"external_id": "x", "payload": {}, "priority": "high"}, "priority"),
    ({"external_id": "x", "payload": {}, "bogus": 1}, "unknown fields"),
    ("a string row", "object"),
]


@pytest.mark.parametrize("bad,reason", BAD)
def test_any_bad_row_rejects_the_whole_batch(user, project, bad, reason):
    batch = rows(3)
    batch.insert(2, bad)
    res = post(client_for(user), project, batch)
    assert res.status_code == 400
    errors = res.json()["error"]["fields"]["rows"]
    assert [e["index"] for e in errors] == [2]
    assert reason in errors[0]["message"]
    assert Item.objects.filter(project=project).count() == 0


def test_every_bad_row_is_listed(user, project):
    batch = rows(5)
    batch[1]["payload"] = []
    batch[3]["prediction"]["label"] = "zzz"
    batch.append(dict(batch[0]))  # duplicate external_id inside the batch
    res = post(client_for(user), project, batch)
    assert res.status_code == 400
    assert [e["index"] for e in res.json()["error"]["fields"]["rows"]] == [1, 3, 5]
    assert "twice" in res.json()["error"]["fields"]["rows"][2]["message"]
    assert Item.objects.count() == 0


def test_probabilities_within_tolerance_accepted(user, project):
    batch = rows(1)
    batch[0]["prediction"]["probabilities"] = {"pos": 0.7, "neg": 0.2, "neu": 0.1005}
    assert post(client_for(user), project, batch).status_code == 201


def test_invalid_json_is_400(user, project):
    res = post(client_for(user), project, "[{not json")
    assert res.status_code == 400 and res.json()["error"]["code"] == "parse_error"
    res = post(client_for(user), project, '{"external_id": 1}\n{oops', content_type="application/x-ndjson")
    assert res.status_code == 400
    assert Item.objects.count() == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_and_give_400(user, project, constant):
    body = '[{"external_id": "e1", "payload": {"score": %s}}]' % constant
    res = post(client_for(user), project, body)
    assert res.status_code == 400 and res.json()["error"]["code"] == "parse_error"
    res = post(client_for(user), project, body[1:-1], content_type="application/x-ndjson")
    assert res.status_code == 400
    assert Item.objects.count() == 0


def test_payload_integers_beyond_64_bits_are_kept(user, project):
    big = 2**70 + 1
    res = post(client_for(user), project, '[{"external_id": "e1", "payload": {"n": %d}}]' % big)
    assert res.status_code == 201, res.json()
    assert Item.objects.get(project=project).payload == {"n": big}
    assert (
        post(client_for(user), project, '[{"external_id": "e1", "payload": {"n": %d}}]' % big).json()["unchanged"] == 1
    )


def test_item_ids_follow_the_order_of_the_batch(user, project):
    batch = rows(12)[::-1]  # e11, e10, ..., e0: not the external_ids' sort order
    post(client_for(user), project, batch)
    assert list(Item.objects.filter(project=project).order_by("id").values_list("external_id", flat=True)) == [
        r["external_id"] for r in batch
    ]


def test_changed_predictions_mark_their_old_and_new_days_and_unchanged_ones_mark_nothing(user, project):
    from labeling.models import FeedbackDirtyDay

    c = client_for(user)
    post(c, project, rows(3))

    def days():
        return sorted(str(d) for d in FeedbackDirtyDay.objects.filter(project=project).values_list("day", flat=True))

    assert days() == ["2026-11-01"]
    FeedbackDirtyDay.objects.all().delete()  # as a refresh would
    assert post(c, project, rows(3)).json()["unchanged"] == 3
    assert days() == []
    batch = rows(3)
    batch[0]["prediction"]["predicted_at"] = "2026-11-05T08:00:00Z"  # the prediction moves to another day
    batch[1]["payload"] = {"text": "edited"}  # an item-only change touches no prediction day
    assert post(c, project, batch).json() == {"created": 0, "updated": 2, "unchanged": 1, "checks": []}
    assert days() == ["2026-11-01", "2026-11-05"]


@override_settings(LOUPE_MAX_BATCH_ROWS=10)
def test_too_many_rows_is_413_with_the_limit(user, project):
    res = post(client_for(user), project, rows(11))
    assert res.status_code == 413
    assert "10" in res.json()["error"]["message"] and res.json()["error"]["code"] == "too_large"
    assert Item.objects.count() == 0


@override_settings(LOUPE_MAX_BATCH_BYTES=2000)
def test_too_many_bytes_is_413_with_the_limit(user, project):
    res = post(client_for(user), project, rows(40))
    assert res.status_code == 413 and "2,000 bytes" in res.json()["error"]["message"]
    assert Item.objects.count() == 0


def test_default_limits_are_10000_rows_and_20_mb(settings):
    assert settings.LOUPE_MAX_BATCH_ROWS == 10_000 and settings.LOUPE_MAX_BATCH_BYTES == 20 * 1024 * 1024


def test_ingest_uses_bulk_queries_not_one_per_row(user, project, django_assert_max_num_queries):
    from django.db import connection

    c = client_for(user)
    # PostgreSQL: COPY + one upsert per table. SQLite splits inserts by its bound-parameter limit.
    limit = 15 if connection.vendor == "postgresql" else 40
    with django_assert_max_num_queries(limit):
        assert post(c, project, rows(500)).status_code == 201
    with django_assert_max_num_queries(limit):
        assert post(c, project, rows(500)).json()["unchanged"] == 500


def test_list_items_cursor_paginated_and_filtered(user, project):
    c = client_for(user)
    post(c, project, rows(25))
    page = c.get(f"/api/projects/{project.id}/items?page_size=10").json()
    assert len(page["results"]) == 10 and page["next"]
    seen = [r["external_id"] for r in page["results"]]
    while page["next"]:
        page = c.get(page["next"]).json()
        seen += [r["external_id"] for r in page["results"]]
    assert sorted(seen) == sorted(f"e{i}" for i in range(25)) and len(seen) == 25
    one = c.get(f"/api/projects/{project.id}/items?external_id=e7").json()["results"]
    assert [r["external_id"] for r in one] == ["e7"]
    assert c.get(f"/api/projects/{project.id}/items?status=open").json()["results"]
    assert c.get(f"/api/projects/{project.id}/items?status=resolved").json()["results"] == []
    assert c.get(f"/api/projects/{project.id}/items?status=bogus").status_code == 400
