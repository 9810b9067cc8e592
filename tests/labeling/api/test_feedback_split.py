"""The feedback-delay report split by deployment stage (?stage=, live_by_stage) and by a declared
slice field (?slice=, live_by_slice), and the project's slice fields. Every number below is counted
by hand from the table in tests.labeling.feedback_data (stage_world)."""

from datetime import UTC, datetime, timedelta

import pytest

from labeling.models import Project, Role
from labeling.services.feedback_rollup import feedback_rollup_refresh
from labeling.services.ingestion import items_ingest
from labeling.services.registry import model_stage_write
from tests.conftest import client_for
from tests.labeling.factories import UserFactory, add_member
from tests.labeling.feedback_data import stage_world

pytestmark = pytest.mark.django_db

NOW = datetime.now(tz=UTC)


@pytest.fixture
def world(user, project):
    stage_world(project, user, now=NOW)
    return client_for(user)


def report(c, project, **params):
    res = c.get(f"/api/projects/{project.id}/feedback-delay", params)
    assert res.status_code == 200, res.json()
    return res.json()


def nums(entry):
    return (entry["predictions"], entry["labeled"], entry["correct"], entry["accuracy_on_labeled"])


def test_live_performance_by_stage_puts_shadow_beside_production(world, project):
    data = report(world, project)
    assert (data["predictions"], data["labeled"]) == (22, 18)
    stages = data["live_by_stage"]
    assert [s["stage"] for s in stages] == ["production", "shadow", "candidate", None]
    prod, shadow, cand, unregistered = stages
    assert nums(prod) == (10, 8, 6, 0.75)
    assert prod["labeled_fraction"] == 0.8 and prod["mean_confidence"] == 0.7
    assert prod["accuracy_interval"] == pytest.approx([0.4093, 0.9285], abs=1e-4)  # Wilson, 6 of 8
    assert nums(shadow) == (10, 8, 7, 0.875)
    assert shadow["mean_confidence"] is None  # no probabilities sent
    assert nums(cand) == (0, 0, 0, None) and cand["accuracy_interval"] is None
    assert [m["model_version"] for m in cand["model_versions"]] == ["cand-3"]
    assert nums(unregistered) == (2, 2, 2, 1.0)
    assert [m["model_version"] for m in unregistered["model_versions"]] == ["old-0"]
    assert nums(prod["model_versions"][0]) == (10, 8, 6, 0.75)
    assert data["live_by_slice"] is None


def test_stage_filters_the_delay_figures_and_live_performance(world, project):
    shadow = report(world, project, stage="shadow")
    assert (shadow["predictions"], shadow["labeled"], shadow["backlog"]["unlabeled"]) == (10, 8, 2)
    assert [s["stage"] for s in shadow["live_by_stage"]] == ["shadow"]
    assert [w["accuracy_on_labeled"] for w in shadow["live_performance"]] == [0.875]  # shadow's alone
    production = report(world, project, stage="production")
    assert (production["predictions"], production["labeled"]) == (10, 8)
    assert production["delay_seconds"]["p50"] is not None
    assert [w["accuracy_on_labeled"] for w in production["live_performance"]] == [0.75]
    # a stage with no registered model in it: nothing, not everything
    canary = report(world, project, stage="canary")
    assert (canary["predictions"], canary["labeled"], canary["live_by_stage"]) == (0, 0, [])
    candidate = report(world, project, stage="candidate")
    assert candidate["predictions"] == 0 and nums(candidate["live_by_stage"][0]) == (0, 0, 0, None)
    # with a model version too: both must hold
    assert report(world, project, stage="shadow", model_version="prod-1")["predictions"] == 0
    assert report(world, project, stage="production", model_version="prod-1")["predictions"] == 10


def test_stage_follows_a_promotion(world, project, user):
    from labeling.selectors.registry import model_get

    model_stage_write(model=model_get(project=project, version="shadow-2"), to_stage="production", actor=user)
    stages = {s["stage"]: nums(s) for s in report(world, project)["live_by_stage"]}
    assert stages["production"] == (10, 8, 7, 0.875)
    assert stages["retired"] == (10, 8, 6, 0.75)  # prod-1 was retired by the promotion
    assert "shadow" not in stages


def test_live_accuracy_by_slice_value(world, project):
    data = report(world, project, slice="channel")
    sl = data["live_by_slice"]
    assert sl["field"] == "channel" and sl["capped"] is False
    values = {v["value"]: v for v in sl["values"]}
    assert [v["value"] for v in sl["values"]] == ["web", "app", "(none)"]
    # web: items 0-5 x (prod, shadow) + old-0 on 0 and 1; all labeled; prod 4, shadow 5, old 2 correct
    assert nums(values["web"]) == (14, 14, 11, 0.7857)
    by_stage = {s["stage"]: nums(s) for s in values["web"]["by_stage"]}
    assert by_stage == {"production": (6, 6, 4, 0.6667), "shadow": (6, 6, 5, 0.8333), None: (2, 2, 2, 1.0)}
    assert [s["stage"] for s in values["web"]["by_stage"]] == ["production", "shadow", None]
    # app: items 6-8 x 2; 6 and 7 labeled, both right for both models
    assert nums(values["app"]) == (6, 4, 4, 1.0)
    by_model = {m["model_version"]: (m["stage"], *nums(m)) for m in values["app"]["by_model_version"]}
    assert by_model == {"prod-1": ("production", 3, 2, 2, 1.0), "shadow-2": ("shadow", 3, 2, 2, 1.0)}
    # item 9 has no channel key
    assert nums(values["(none)"]) == (2, 0, 0, None)
    # set-wise from the predictions, it agrees with the rollups
    assert sum(v["predictions"] for v in sl["values"]) == data["predictions"]
    assert sum(v["labeled"] for v in sl["values"]) == data["labeled"]


def test_slice_respects_stage_source_and_days(world, project):
    shadow = report(world, project, slice="channel", stage="shadow")["live_by_slice"]["values"]
    assert {v["value"]: nums(v) for v in shadow} == {
        "web": (6, 6, 5, 0.8333),
        "app": (3, 2, 2, 1.0),
        "(none)": (1, 0, 0, None),
    }
    # truth from another channel counts as not arrived
    human = report(world, project, slice="channel", source="human")
    assert human["labeled"] == 0 and all(v["labeled"] == 0 for v in human["live_by_slice"]["values"])
    chargeback = report(world, project, slice="channel", source="chargeback")["live_by_slice"]["values"]
    assert nums(chargeback[0]) == (14, 14, 11, 0.7857)
    before = (NOW - timedelta(days=10)).date().isoformat()
    assert report(world, project, slice="channel", until=before)["live_by_slice"]["values"] == []
    since = (NOW - timedelta(days=4)).date().isoformat()
    assert report(world, project, slice="channel", since=since)["live_by_slice"]["values"][0]["predictions"] == 14
    assert (
        report(world, project, slice="channel", model_version="old-0")["live_by_slice"]["values"][0]["value"] == "web"
    )


def test_slice_keeps_the_50_biggest_values_and_folds_the_rest(user, project, django_assert_max_num_queries):
    rows = [
        {
            "external_id": f"c{i}",
            "payload": {"channel": f"c{i:02d}", "tier": i % 2},
            "prediction": {"model_version": "m", "label": "pos", "predicted_at": (NOW - timedelta(days=2)).isoformat()},
        }
        for i in range(55)
    ]
    rows += [
        {
            "external_id": f"x{i}",
            "payload": {"channel": "c54"},
            "prediction": {"model_version": "m", "label": "pos", "predicted_at": (NOW - timedelta(days=2)).isoformat()},
        }
        for i in range(2)
    ]
    items_ingest(project=project, rows=rows)
    Project.objects.filter(pk=project.pk).update(slice_fields=["channel", "tier"])
    feedback_rollup_refresh(project_id=project.pk)
    c = client_for(user)
    with django_assert_max_num_queries(11):
        sl = report(c, project, slice="channel")["live_by_slice"]
    values = [v["value"] for v in sl["values"]]
    assert sl["capped"] is True and len(values) == 51
    assert values[0] == "c54" and sl["values"][0]["predictions"] == 3
    assert values[1:50] == [f"c{i:02d}" for i in range(49)]
    assert values[-1] == "(other)" and sl["values"][-1]["predictions"] == 5  # c49..c53
    tiers = {v["value"]: v["predictions"] for v in report(c, project, slice="tier")["live_by_slice"]["values"]}
    assert tiers == {"0": 28, "1": 27, "(none)": 2}  # JSON numbers as text


@pytest.mark.parametrize(
    "params, field, says",
    [
        ({"stage": "staging"}, "stage", "Unknown stage 'staging'"),
        ({"stage": ["shadow", "production"]}, "stage", "at most once"),
        ({"slice": "country"}, "slice", "declared: channel, customer_tier"),
        ({"slice": "bug"}, "slice", "Unknown slice field 'bug'"),
    ],
)
def test_bad_stage_or_slice_is_400(world, project, params, field, says):
    res = world.get(f"/api/projects/{project.id}/feedback-delay", params)
    assert res.status_code == 400
    body = res.json()["error"]
    assert set(body["fields"]) == {field} and says in body["fields"][field][0]


def test_slice_without_declared_fields_says_how_to_declare_them(user, project):
    res = client_for(user).get(f"/api/projects/{project.id}/feedback-delay", {"slice": "channel"})
    assert res.status_code == 400
    message = res.json()["error"]["fields"]["slice"][0]
    assert "declares no slice fields" in message and "slice_fields" in message


# --- Project.slice_fields --------------------------------------------------------------------------


def test_slice_fields_set_on_create_and_patch(user, project):
    staff = UserFactory(is_staff=True)
    body = {
        "name": "Sliced",
        "labels": [{"key": "a", "name": "A"}, {"key": "b", "name": "B"}],
        "slice_fields": ["channel", "customer.tier", "region-2"],
    }
    res = client_for(staff).post("/api/projects", body, format="json")
    assert res.status_code == 201, res.json()
    assert res.json()["slice_fields"] == ["channel", "customer.tier", "region-2"]
    assert Project.objects.get(pk=res.json()["id"]).slice_fields == ["channel", "customer.tier", "region-2"]
    c = client_for(user)
    assert c.get(f"/api/projects/{project.id}").json()["slice_fields"] == []
    res = c.patch(f"/api/projects/{project.id}", {"slice_fields": ["customer_tier", "channel"]}, format="json")
    assert res.status_code == 200 and res.json()["slice_fields"] == ["customer_tier", "channel"]
    res = c.patch(f"/api/projects/{project.id}", {"slice_fields": []}, format="json")
    assert res.status_code == 200 and Project.objects.get(pk=project.pk).slice_fields == []


@pytest.mark.parametrize(
    "value, says",
    [
        (["bug"], "reserved"),
        (["channel", "bug"], "reserved"),
        (["channel", "channel"], "Duplicate"),
        ([""], "blank"),
        (["a b"], "pattern"),
        (["x" * 65], "64"),
        (["ok\n"], "pattern"),
        ([f"f{i}" for i in range(21)], "20"),
        ("channel", "list"),
        ([3], "string"),
        (None, "null"),
    ],
)
def test_bad_slice_fields_are_400_and_change_nothing(user, project, value, says):
    c = client_for(user)
    assert c.patch(f"/api/projects/{project.id}", {"slice_fields": ["keep"]}, format="json").status_code == 200
    res = c.patch(f"/api/projects/{project.id}", {"slice_fields": value, "name": "renamed"}, format="json")
    assert res.status_code == 400, res.json()
    error = res.json()["error"]
    assert "slice_fields" in error["fields"] and says in str(error), error
    project.refresh_from_db()
    assert project.slice_fields == ["keep"] and project.name != "renamed"


def test_reserved_slice_field_refused_on_create(user):
    staff = UserFactory(is_staff=True)
    body = {"name": "S", "labels": [{"key": "a", "name": "A"}, {"key": "b", "name": "B"}], "slice_fields": ["bug"]}
    res = client_for(staff).post("/api/projects", body, format="json")
    assert res.status_code == 400 and "reserved" in res.json()["error"]["message"]
    assert not Project.objects.filter(name="S").exists()


def test_only_managers_set_slice_fields(project):
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    res = client_for(reviewer).patch(f"/api/projects/{project.id}", {"slice_fields": ["channel"]}, format="json")
    assert res.status_code == 403
    project.refresh_from_db()
    assert project.slice_fields == []


def test_slice_source_is_the_channel_of_the_first_truth_as_in_the_rollups(world, project, user):
    from labeling.models import Item
    from labeling.services.ground_truth import ground_truth_set

    # e0: imported as a chargeback first, then changed by a reviewer: still the chargeback channel
    ground_truth_set(
        item=Item.objects.get(project=project, external_id="e0"), label="neg", method="adjudicated", actor=user
    )
    feedback_rollup_refresh(project_id=project.pk)
    chargeback = report(world, project, slice="channel", source="chargeback")
    web = chargeback["live_by_slice"]["values"][0]
    assert web["value"] == "web" and nums(web) == (14, 14, 8, 0.5714)  # e0 is now wrong for all three models
    assert sum(v["labeled"] for v in chargeback["live_by_slice"]["values"]) == chargeback["labeled"] == 18
    human = report(world, project, slice="channel", source="human")
    assert human["labeled"] == 0 and sum(v["labeled"] for v in human["live_by_slice"]["values"]) == 0
