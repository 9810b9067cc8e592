"""One timestamp reader (common.timestamps) for every time Loupe takes: 1970-01-01 to 2100-01-01 UTC,
else a 400 naming the field; nothing written."""

from datetime import UTC, datetime

import pytest

from common.timestamps import OutOfRange, parse_timestamp
from labeling.models import GroundTruthObservation, Prediction
from tests.input_world import client, error_of, input_world
from tests.rows import snapshot

UTC = UTC


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),  # naive means UTC
        ("2099-12-31T23:59:59.999999+00:00", datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2100-01-01T05:00:00+06:00", datetime(2099, 12, 31, 23, tzinfo=UTC)),  # the instant counts, not the wall time
    ],
)
def test_inside_the_range(text, expected):
    assert parse_timestamp(text, field="t") == expected


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+12:00",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+00:01",
        "2100-01-01T00:00:00Z",
        "9999-12-31T23:59:59-12:00",
    ],
)
def test_outside_the_range(text):
    with pytest.raises(OutOfRange, match="t must be from 1970-01-01 to 2100-01-01"):
        parse_timestamp(text, field="t")


@pytest.fixture
def world(db):
    return input_world()


def refused(world, method, path, body=None) -> dict:
    before = snapshot()
    c = client(world["users"]["manager"])
    path = path.format(**world["ids"])
    res = c.get(path) if method == "GET" else c.generic(method, path, body, content_type="application/json")
    error = error_of(res, 400)
    assert snapshot() == before, "a refused request wrote"
    return error


def items(predicted_at):
    return (
        '[{"external_id": "ok", "payload": {}}, {"external_id": "t", "payload": {}, "prediction": '
        '{"model_version": "v1", "label": "pos", "predicted_at": "%s"}}]' % predicted_at
    )


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00+12:00", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00"]
)
def test_ingested_prediction_time_outside_the_range_is_a_400(world, at):
    error = refused(world, "POST", "/api/projects/{p}/items", items(at))
    assert error["fields"]["rows"] == [{"index": 1, "message": error["fields"]["rows"][0]["message"]}]
    assert "prediction.predicted_at must be from 1970-01-01 to 2100-01-01" in error["message"]


def test_prediction_times_at_the_edges_are_stored(world):
    c = client(world["users"]["manager"])
    for n, at in enumerate(["1970-01-01T00:00:00Z", "2099-12-31T23:59:59Z"]):
        body = items(at).replace('"t"', f'"edge-{n}"')
        assert (
            c.generic(
                "POST", f"/api/projects/{world['ids']['p']}/items", body, content_type="application/json"
            ).status_code
            == 201
        )
    stored = sorted(
        Prediction.objects.filter(item__external_id__startswith="edge").values_list("predicted_at", flat=True)
    )
    assert stored == [datetime(1970, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)]
    assert c.get(f"/api/projects/{world['ids']['p']}/items").status_code == 200


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "1900-06-01"])
def test_ground_truth_observed_outside_the_range_is_a_400(world, at):
    body = '[{"external_id": "it-0", "label": "neg", "observed_at": "%s"}]' % at
    error = refused(world, "POST", "/api/projects/{p}/ground-truth", body)
    assert "observed_at must be from 1970-01-01" in error["message"]
    assert not GroundTruthObservation.objects.exists()


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+12:00", "9999-12-31T23:59:59-12:00", "1960-01-01T00:00:00Z"])
def test_bug_failure_time_outside_the_range_is_a_400(world, at):
    body = (
        '{"project": %d, "title": "t", "kind": "failed_prediction", '
        '"failures": [{"payload": {"text": "x"}, "predicted_label": "pos", "predicted_at": "%s"}]}'
        % (world["ids"]["p"], at)
    )
    error = refused(world, "POST", "/api/bugs", body)
    assert error["fields"] == {"failures": [{"predicted_at": [error["fields"]["failures"][0]["predicted_at"][0]]}]}
    assert "predicted_at must be from 1970-01-01 to 2100-01-01" in error["message"]


@pytest.mark.parametrize(
    "path,param",
    [
        ("/api/projects/{p}/annotations?since=0001-01-01T00:00:00%2B12:00", "since"),
        ("/api/projects/{p}/annotations?since=2100-01-01T00:00:00Z", "since"),
        ("/api/projects/{p}/feedback-delay?since=0001-01-01", "since"),
        ("/api/projects/{p}/feedback-delay?until=9999-12-31T23:59:59-12:00", "until"),
        ("/api/projects/{p}/feedback-delay?until=1969-12-31", "until"),
        ("/api/triage?project={p}&week=9999-W52", "week"),
        ("/api/triage?project={p}&week=1969-W01", "week"),
    ],
)
def test_time_query_parameters_outside_the_range_are_a_400(world, path, param):
    assert param in refused(world, "GET", path)["fields"]
