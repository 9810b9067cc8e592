import pytest

from bugqueue.models import Dataset
from labeling.models import ModelStageChange, ModelVersion, Role
from tests.bugqueue.services.test_gate import gate_dataset, result
from tests.conftest import client_for
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def url(project, *parts):
    return "/".join([f"/api/projects/{project.pk}/models", *parts])


def register(client, project, version, **extra):
    return client.post(url(project), {"version": version, **extra}, format="json")


def promote(client, project, version, stage, **extra):
    return client.post(url(project, version, "promote"), {"stage": stage, **extra}, format="json")


def test_register_list_and_read_with_history(user, project):
    c = client_for(user)
    res = register(c, project, "2024-10-01.3", description="nightly")
    assert res.status_code == 201, res.json()
    body = res.json()
    assert body["version"] == "2024-10-01.3" and body["stage"] == "candidate" and body["created_by"] == user.username
    assert [(h["from_stage"], h["to_stage"]) for h in body["history"]] == [("", "candidate")]
    again = register(c, project, "2024-10-01.3")
    assert again.status_code == 409 and again.json()["error"]["code"] == "model_exists"
    assert register(c, project, "").status_code == 400
    assert register(c, project, "org/model:2").status_code == 201

    ds = gate_dataset(project)
    ev = result(project, "2024-10-01.3", ds, passed=False, reasons=["accuracy 0.5 is below 0.8"])
    listed = c.get(url(project)).json()
    assert {m["version"] for m in listed} == {"2024-10-01.3", "org/model:2"}
    (m,) = [m for m in listed if m["version"] == "2024-10-01.3"]
    assert m["stage_changed_at"] is None
    (e,) = m["evaluations"]
    assert (e["evaluation"], e["dataset"], e["dataset_version"], e["passed"]) == (ev.pk, ds.pk, 8, False)

    detail = c.get(url(project, "2024-10-01.3"))
    assert detail.status_code == 200 and detail.json()["description"] == "nightly"
    slashed = c.get(url(project, "org/model:2"))
    assert slashed.status_code == 200 and slashed.json()["version"] == "org/model:2"
    missing = c.get(url(project, "v404"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_promotion_is_refused_with_409_naming_the_datasets_then_allowed(user, project):
    c = client_for(user)
    ds = gate_dataset(project, name="resolved bugs", version=8)
    billing = gate_dataset(project, name="billing", version=3)
    register(c, project, "v2")
    assert promote(c, project, "v2", "production", override_reason="first model").status_code == 200
    register(c, project, "v5")

    # missing, then failing, then compared with an old baseline
    res = promote(c, project, "v5", "production")
    assert res.status_code == 409
    err = res.json()["error"]
    assert err["code"] == "gate_failed" and "resolved bugs" in err["message"] and "billing" in err["message"]
    assert {d["name"]: d["reasons"] for d in err["fields"]["datasets"]} == {
        "resolved bugs": ["not evaluated on v8"],
        "billing": ["not evaluated on v3"],
    }
    result(project, "v5", billing, baseline="v2")
    result(project, "v5", ds, passed=False, baseline="v2", reasons=["4 items regressed"])
    res = promote(c, project, "v5", "canary")
    assert res.status_code == 409
    assert [d["name"] for d in res.json()["error"]["fields"]["datasets"]] == ["resolved bugs"]
    assert "billing" not in res.json()["error"]["message"]
    result(project, "v5", ds, baseline="v1")  # newer, but against another baseline: it does not count
    res = promote(c, project, "v5", "production")
    assert res.json()["error"]["fields"]["datasets"][0]["reasons"] == ["failed: 4 items regressed"]
    assert ModelVersion.objects.get(project=project, version="v5").stage == "candidate"

    # the gate's answer without promoting
    gate = c.get(url(project, "v5", "gate"), {"stage": "production"}).json()
    assert gate["stage"] == "production" and gate["allowed"] is False and gate["baseline"] == "v2"
    assert [(d["name"], d["passed"]) for d in gate["datasets"]] == [("billing", True), ("resolved bugs", False)]

    ok = result(project, "v5", ds, baseline="v2")
    assert c.get(url(project, "v5", "gate")).json()["allowed"] is True
    res = promote(c, project, "v5", "production", note="release 5")
    assert res.status_code == 200, res.json()
    body = res.json()
    assert body["model"]["stage"] == "production" and body["model"]["stage_changed_at"]
    change = body["change"]
    assert (change["from_stage"], change["to_stage"], change["actor"]) == ("candidate", "production", user.username)
    assert change["evaluation"] == ok.pk and change["note"] == "release 5" and change["override_reason"] == ""
    assert body["model"]["history"][-1]["id"] == change["id"]
    old = c.get(url(project, "v2")).json()
    assert old["stage"] == "retired"
    assert (old["history"][-1]["from_stage"], old["history"][-1]["to_stage"]) == ("production", "retired")


def test_override_is_recorded_and_demotion_needs_no_gate(user, project):
    c = client_for(user)
    gate_dataset(project)
    register(c, project, "v5")
    assert promote(c, project, "v5", "production").status_code == 409
    res = promote(c, project, "v5", "production", override_reason="outage hotfix")
    assert res.status_code == 200
    change = res.json()["change"]
    assert change["override_reason"] == "outage hotfix" and change["evaluation"] is None
    assert change["gate"][0]["passed"] is False and change["gate"][0]["reasons"] == ["not evaluated on v8"]
    res = promote(c, project, "v5", "shadow")
    assert res.status_code == 200 and res.json()["change"]["gate"] == []
    same = promote(c, project, "v5", "shadow")
    assert same.status_code == 400 and same.json()["error"]["code"] == "same_stage"
    assert promote(c, project, "v5", "live").status_code == 400
    assert promote(c, project, "v9", "shadow").status_code == 404
    gate = c.get(url(project, "v5", "gate"), {"stage": "retired"}).json()
    assert gate == {
        "stage": "retired",
        "current_stage": "shadow",
        "allowed": True,
        "gated": False,
        "baseline": None,
        "datasets": [],
    }
    assert c.get(url(project, "v5", "gate"), {"stage": "live"}).status_code == 400
    assert c.get(url(project, "v5", "gate"), {"other": "x"}).status_code == 400


def test_permissions(user, project):
    annotator = add_member(project, role=Role.ANNOTATOR)
    reviewer = add_member(project, role=Role.REVIEWER)
    c = client_for(user)
    register(c, project, "v5")
    Dataset.objects.create(project=project, name="g", gate=True, latest_version=1)
    for member in (annotator, reviewer):
        mc = client_for(member)
        assert register(mc, project, "v6").status_code == 403
        res = promote(mc, project, "v5", "production", override_reason="me")
        assert res.status_code == 403 and res.json()["error"]["code"] == "forbidden"
        assert mc.get(url(project)).status_code == 200
        assert mc.get(url(project, "v5", "gate")).status_code == 200
    outsider = client_for(UserFactory())
    assert outsider.get(url(project)).status_code == 404
    assert outsider.get(url(project, "v5")).status_code == 404
    assert ModelStageChange.objects.filter(model__project=project).count() == 1
    assert not ModelVersion.objects.filter(version="v6").exists()


def test_list_query_count_is_bounded(user, project, django_assert_max_num_queries):
    c = client_for(user)
    ds = gate_dataset(project)
    for i in range(5):
        register(c, project, f"v{i}")
        result(project, f"v{i}", ds)
    with django_assert_max_num_queries(6):
        assert len(c.get(url(project)).json()) == 5


@pytest.mark.parametrize(
    "path, body",
    [
        ("", {"version": 5}),
        ("", {"version": "v1", "owner": "me"}),
        ("", {"version": "x" * 129}),
        ("", {"version": "v\u0000"}),
        ("", ["v1"]),
        ("v1/promote", {"stage": 4}),
        ("v1/promote", {"stage": "production", "override_reason": ["why"]}),
        ("v1/promote", {"stage": "production", "extra": 1}),
        ("v1/promote", {}),
        ("v%00/promote", {"stage": "shadow"}),
    ],
)
def test_bad_input_is_a_4xx_and_changes_nothing(user, project, path, body):
    c = client_for(user)
    register(c, project, "v1")
    before = list(ModelStageChange.objects.values_list("id", "to_stage"))
    res = c.post(url(project, path) if path else url(project), body, format="json")
    assert 400 <= res.status_code < 500 and res.json()["error"]["code"], res.content
    assert list(ModelStageChange.objects.values_list("id", "to_stage")) == before
    assert list(ModelVersion.objects.values_list("version", "stage")) == [("v1", "candidate")]


def test_a_nul_in_the_version_path_is_a_404(user, project):
    c = client_for(user)
    assert c.get(url(project, "v%00")).status_code == 404
    assert c.get(url(project, "v%00", "gate")).status_code == 404
