import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from labeling.models import GroundTruth, GroundTruthObservation, Item, ItemStatus, LabelChange, Role
from labeling.services.feedback_rollup import feedback_rollup_refresh
from labeling.services.ground_truth import ground_truth_set
from labeling.services.ingestion import items_ingest
from tests.conftest import client_for
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db

PROBS = {"pos": 0.7, "neg": 0.2, "neu": 0.1}
NOW = datetime.now(tz=UTC)


def ingest(project, n, *, days_ago=3, model_version="v1"):
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": f"e{i}",
                "payload": {"text": str(i)},
                "prediction": {
                    "model_version": model_version,
                    "label": "pos",
                    "probabilities": PROBS,
                    "predicted_at": (NOW - timedelta(days=days_ago, hours=i)).isoformat(),
                },
            }
            for i in range(n)
        ],
    )


def post(client, project, body, content_type="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"/api/projects/{project.id}/ground-truth", data, content_type=content_type)


def delay(client, project, **params):
    return client.get(f"/api/projects/{project.id}/feedback-delay", params)


# --- POST ground-truth -------------------------------------------------------------------------


def test_import_reports_every_row_and_is_idempotent(user, project):
    ingest(project, 3)
    c = client_for(user)
    body = [
        {"external_id": "e0", "label": "neg", "source": "chargeback", "observed_at": NOW.isoformat()},
        {"external_id": "e1", "label": "pos"},
        {"external_id": "nobody", "label": "pos", "source": "chargeback"},
    ]
    res = post(c, project, body)
    assert res.status_code == 201, res.json()
    data = res.json()
    assert {k: data[k] for k in ("received", "applied", "pending", "unchanged", "conflicts")} == {
        "received": 3,
        "applied": 2,
        "pending": 1,
        "unchanged": 0,
        "conflicts": 0,
    }
    assert [(r["index"], r["external_id"], r["outcome"]) for r in data["rows"]] == [
        (0, "e0", "applied"),
        (1, "e1", "applied"),
        (2, "nobody", "pending"),
    ]
    assert "not" not in data["rows"][0] and "message" in data["rows"][2]
    again = post(c, project, body)
    assert again.status_code == 200 and again.json()["unchanged"] == 3
    assert GroundTruthObservation.objects.filter(project=project).count() == 3
    assert LabelChange.objects.filter(project=project).count() == 2


def test_import_json_lines(user, project):
    ingest(project, 2)
    body = "\n".join(json.dumps({"external_id": f"e{i}", "label": "neu"}) for i in range(2)) + "\n"
    res = post(client_for(user), project, body, content_type="application/x-ndjson")
    assert res.status_code == 201 and res.json()["applied"] == 2


def test_conflict_with_a_human_label_is_reported_and_goes_to_review(user, project):
    ingest(project, 1)
    item = Item.objects.get(project=project, external_id="e0")
    ground_truth_set(item=item, label="pos", method="adjudicated", actor=user)
    res = post(client_for(user), project, [{"external_id": "e0", "label": "neg", "source": "chargeback"}])
    assert res.status_code == 201 and res.json()["conflicts"] == 1
    assert res.json()["rows"][0]["outcome"] == "conflict"
    assert GroundTruth.objects.get(item=item).label == "pos"
    assert Item.objects.get(pk=item.pk).status == ItemStatus.CONFLICT


BAD = [
    ({"external_id": "e0"}, "label"),
    ({"external_id": "e0", "label": "nope"}, "not a label"),
    ({"label": "pos"}, "external_id"),
    ({"external_id": "e0", "label": "pos", "observed_at": "yesterday"}, "observed_at"),
    ({"external_id": "e0", "label": "pos", "observed_at": "2099-01-01T00:00:00Z"}, "future"),
    ({"external_id": "e0", "label": "pos", "observed_at": "0001-01-01T00:00:00Z"}, "from 1970-01-01 to 2100-01-01"),
    ({"external_id": "e0", "label": "pos", "source": "Bad Source!"}, "source"),
    ({"external_id": "e0", "label": "pos", "source": "human"}, "reserved"),
    ({"external_id": "e0", "label": "pos", "extra": 1}, "unknown fields"),
    (["not", "an", "object"], "object"),
]


@pytest.mark.parametrize("bad,reason", BAD)
def test_any_bad_row_rejects_the_whole_batch(user, project, bad, reason):
    ingest(project, 3)
    batch = [{"external_id": "e1", "label": "pos"}, {"external_id": "e2", "label": "neg"}]
    batch.insert(1, bad)
    res = post(client_for(user), project, batch)
    assert res.status_code == 400, res.json()
    errors = res.json()["error"]["fields"]["rows"]
    assert [e["index"] for e in errors] == [1] and reason in errors[0]["message"]
    assert GroundTruth.objects.count() == 0 and GroundTruthObservation.objects.count() == 0


def test_every_bad_row_listed_including_duplicates(user, project):
    ingest(project, 3)
    batch = [
        {"external_id": "e0", "label": "zzz"},
        {"external_id": "e1", "label": "pos"},
        {"external_id": "e1", "label": "neg"},
        {"external_id": "e2", "label": "pos", "observed_at": 5},
    ]
    res = post(client_for(user), project, batch)
    assert res.status_code == 400
    assert [e["index"] for e in res.json()["error"]["fields"]["rows"]] == [0, 2, 3]
    assert GroundTruthObservation.objects.count() == 0


def test_empty_and_invalid_bodies(user, project):
    c = client_for(user)
    assert post(c, project, []).status_code == 400
    assert post(c, project, "[{oops").json()["error"]["code"] == "parse_error"
    assert post(c, project, {"external_id": "e0"}).status_code == 400


@override_settings(LOUPE_MAX_BATCH_ROWS=5)
def test_too_many_rows_is_413(user, project):
    res = post(client_for(user), project, [{"external_id": f"e{i}", "label": "pos"} for i in range(6)])
    assert res.status_code == 413 and res.json()["error"]["code"] == "too_large"


@override_settings(LOUPE_MAX_BATCH_BYTES=100)
def test_too_many_bytes_is_413(user, project):
    res = post(client_for(user), project, [{"external_id": f"e{i}", "label": "pos"} for i in range(20)])
    assert res.status_code == 413


@pytest.mark.parametrize("role,code", [(Role.ANNOTATOR, 403), (Role.REVIEWER, 403), (None, 404)])
def test_only_managers_import(project, role, code):
    other = UserFactory()
    if role:
        add_member(project, other, role)
    res = post(client_for(other), project, [{"external_id": "e0", "label": "pos"}])
    assert res.status_code == code and "error" in res.json()


def test_anonymous_is_401(project, api):
    assert post(api, project, [{"external_id": "e0", "label": "pos"}]).status_code == 401


# --- GET feedback-delay ------------------------------------------------------------------------

KEYS = {
    "predictions",
    "labeled",
    "labeled_fraction",
    "delay_seconds",
    "naive_delay_seconds",
    "coverage",
    "cohorts",
    "backlog",
    "slo",
    "staffing",
    "live_performance",
    "live_by_stage",
    "live_by_slice",
}


def test_report_has_exactly_the_documented_shape(user, project, django_assert_max_num_queries):
    ingest(project, 20, days_ago=10)
    post(
        client_for(user),
        project,
        [
            {
                "external_id": f"e{i}",
                "label": "pos",
                "source": "chargeback",
                "observed_at": (NOW - timedelta(days=2)).isoformat(),
            }
            for i in range(12)
        ],
    )
    feedback_rollup_refresh(project_id=project.pk)
    c = client_for(user)
    # 10: the rollup reads, plus the staffing inputs (completed items with their review decisions; review times).
    with django_assert_max_num_queries(10):
        res = delay(c, project)
    assert res.status_code == 200, res.json()
    data = res.json()
    assert set(data) == KEYS
    assert (data["predictions"], data["labeled"], data["labeled_fraction"]) == (20, 12, 0.6)
    assert set(data["delay_seconds"]) == set(data["naive_delay_seconds"]) == {"p50", "p90", "p99"}
    assert set(data["coverage"][0]) == {"age_days", "fraction_labeled"}
    assert set(data["cohorts"][0]) == {"week", "predictions", "fraction_labeled_by_day"}
    assert set(data["backlog"]) == {"unlabeled", "oldest_age_seconds"} and data["backlog"]["unlabeled"] == 8
    assert set(data["slo"]) == {"quantile", "target_seconds", "observed_seconds", "breached"}
    assert set(data["staffing"]) == {
        "arrivals_per_day",
        "median_seconds_per_annotation",
        "annotations_per_item",
        "annotations_per_item_source",
        "configured_annotations_per_item",
        "completed_items",
        "annotator_hours_per_day_needed",
        "reviews_per_item",
        "reviews_per_day",
        "median_seconds_per_review",
        "review_hours_per_day_needed",
        "hours_per_day_needed",
        "days_to_clear_backlog",
        "definitions",
    }
    week = data["live_performance"][0]
    assert set(week) == {"week", "accuracy_on_labeled", "fraction_labeled", "estimated_accuracy", "interval"}
    assert len(week["interval"]) == 2 and week["interval"][0] <= week["estimated_accuracy"] <= week["interval"][1]


def test_filters_select_predictions(user, project):
    ingest(project, 10, days_ago=3)
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": f"v2-{i}",
                "payload": {},
                "prediction": {
                    "model_version": "v2",
                    "label": "neg",
                    "predicted_at": (NOW - timedelta(days=30)).isoformat(),
                },
            }
            for i in range(4)
        ],
    )
    post(client_for(user), project, [{"external_id": "v2-0", "label": "neg", "source": "chargeback"}])
    feedback_rollup_refresh(project_id=project.pk)
    c = client_for(user)
    assert delay(c, project, model_version="v2").json()["predictions"] == 4
    day = (NOW - timedelta(days=30)).date().isoformat()
    assert delay(c, project, since=day, until=day).json()["predictions"] == 4
    assert delay(c, project, since=(NOW - timedelta(days=5)).date().isoformat()).json()["predictions"] == 10
    assert delay(c, project, source="chargeback").json()["labeled"] == 1
    assert delay(c, project, source="human").json()["labeled"] == 0


@pytest.mark.parametrize(
    "params,field",
    [
        ({"since": "last week"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "until"),
        ({"source": "carrier-pigeon"}, "source"),
        ({"model_version": "v9"}, "model_version"),
        ({"modelversion": "v1"}, "modelversion"),
    ],
)
def test_bad_query_parameters_are_400(user, project, params, field):
    ingest(project, 2)
    feedback_rollup_refresh(project_id=project.pk)
    res = delay(client_for(user), project, **params)
    assert res.status_code == 400, res.json()
    assert field in res.json()["error"]["fields"]


def test_dates_and_date_times_are_accepted(user, project):
    c = client_for(user)
    assert delay(c, project, since="2026-01-01", until="2026-01-31T23:00:00Z").status_code == 200


def test_empty_project_report(user, project):
    data = delay(client_for(user), project).json()
    assert (data["predictions"], data["labeled_fraction"], data["delay_seconds"]["p50"]) == (0, None, None)
    assert data["slo"]["breached"] is False and data["cohorts"] == [] and data["backlog"]["oldest_age_seconds"] is None


@pytest.mark.parametrize("role,code", [(Role.ANNOTATOR, 403), (Role.REVIEWER, 200), (None, 404)])
def test_report_permissions(project, role, code):
    other = UserFactory()
    if role:
        add_member(project, other, role)
    assert delay(client_for(other), project).status_code == code


def test_staffing_uses_annotation_time_and_overlap(user, project):
    from labeling.models import Annotation

    ingest(project, 14, days_ago=1)
    items = list(Item.objects.filter(project=project))
    annotator = UserFactory()
    Annotation.objects.bulk_create(
        [
            Annotation(project_id=it.project_id, item=it, annotator=annotator, label="pos", seconds_spent=s)
            for it, s in zip(items, [10, 20, 30, 40, 50])
        ]
    )
    feedback_rollup_refresh(project_id=project.pk)
    staffing = delay(client_for(user), project).json()["staffing"]
    # No completed item yet: the configured overlap stands in, and no review work is counted.
    assert staffing["median_seconds_per_annotation"] == 30.0 and staffing["annotations_per_item"] == 3
    assert staffing["annotations_per_item_source"] == "configured" and staffing["completed_items"] == 0
    assert staffing["arrivals_per_day"] == 2.0  # 14 predictions in the last 7 whole days
    assert staffing["annotator_hours_per_day_needed"] == pytest.approx(2.0 * 3 * 30 / 3600, abs=0.01)
    assert staffing["reviews_per_day"] == 0 and staffing["review_hours_per_day_needed"] == 0
    assert staffing["days_to_clear_backlog"] is None  # no ground truth arriving: never at this pace


def test_staffing_measures_annotations_per_completed_item_and_review_hours(user, project):
    """4 completed items with 3, 3, 5 and 5 annotations (mean 4, not the configured 3), each decided by
    a reviewer (1 decision per item): 3 under a review lease taking 60, 90 and 120 s (the 90 s one on
    a lease taken again after it expired), 1 without a lease (a decision, but no duration). An
    imported item with no annotation and an open item with 2 are not completed work."""
    from labeling.models import Annotation, Assignment, AssignmentKind, AssignmentStatus
    from labeling.services.resolution import item_resolve

    ingest(project, 14, days_ago=1)
    items = list(Item.objects.filter(project=project).order_by("id"))
    people = [UserFactory() for _ in range(5)]
    reviewer = UserFactory()
    plan = {0: 3, 1: 3, 2: 5, 3: 5, 5: 2}  # item index -> annotations
    Annotation.objects.bulk_create(
        [
            Annotation(project_id=project.pk, item=items[i], annotator=people[j], label="pos", seconds_spent=30)
            for i, n in plan.items()
            for j in range(n)
        ]
    )
    for i, n in plan.items():
        Item.objects.filter(pk=items[i].pk).update(annotation_count=n)
    lease = timedelta(seconds=project.lease_seconds)
    leases = [
        Assignment.objects.create(item=items[i], annotator=reviewer, kind=AssignmentKind.REVIEW, expires_at=NOW + lease)
        for i in range(3)
    ]
    for i in range(4):
        item_resolve(item=items[i], reviewer=reviewer, label="neg")
    Item.objects.filter(pk=items[4].pk).update(status=ItemStatus.RESOLVED)  # as an import would, no annotation
    finished = NOW - timedelta(hours=1)
    for a, (created, expires) in zip(
        leases,
        [
            (finished - timedelta(seconds=60), finished - timedelta(seconds=60) + lease),
            # first taken two days earlier, expired, taken again 90 s before the decision
            (finished - timedelta(days=2), finished - timedelta(seconds=90) + lease),
            (finished - timedelta(seconds=120), finished - timedelta(seconds=120) + lease),
        ],
    ):
        assert Assignment.objects.get(pk=a.pk).status == AssignmentStatus.SUBMITTED
        Assignment.objects.filter(pk=a.pk).update(created_at=created, expires_at=expires, finished_at=finished)
    # A skipped review lease is no decision.
    Assignment.objects.create(
        item=items[3],
        annotator=people[0],
        kind=AssignmentKind.REVIEW,
        expires_at=finished,
        status=AssignmentStatus.SKIPPED,
        finished_at=finished,
    )
    feedback_rollup_refresh(project_id=project.pk)
    staffing = delay(client_for(user), project).json()["staffing"]
    assert staffing["arrivals_per_day"] == 2.0
    assert staffing["completed_items"] == 4 and staffing["annotations_per_item_source"] == "measured"
    assert staffing["annotations_per_item"] == 4.0 and staffing["configured_annotations_per_item"] == 3
    assert staffing["annotator_hours_per_day_needed"] == pytest.approx(2.0 * 4 * 30 / 3600, abs=0.005)
    assert staffing["reviews_per_item"] == 1.0 and staffing["reviews_per_day"] == 2.0
    assert staffing["median_seconds_per_review"] == 90.0
    assert staffing["review_hours_per_day_needed"] == pytest.approx(2.0 * 90 / 3600, abs=0.005)
    assert staffing["hours_per_day_needed"] == pytest.approx(2.0 * 4 * 30 / 3600 + 2.0 * 90 / 3600, abs=0.01)
    assert "completed item" in staffing["definitions"]["annotations_per_item"]
    assert "median seconds per review" in staffing["definitions"]["review_hours_per_day_needed"]
