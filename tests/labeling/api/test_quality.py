"""API: quality runs, review queue, resolution, annotators, agreement, settings."""

from unittest import mock

import numpy as np
import pytest

from labeling.models import Annotation, GroundTruth, GuidelineRevision, Item, QualityRun, Role
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute
from labeling.tasks import quality_run_task
from tests.conftest import client_for
from tests.labeling.factories import (
    UserFactory,
    add_member,
    annotate,
    annotators,
    crowd_project,
    load_crowd,
    simulate_crowd,
)


@pytest.fixture
def scored(db):
    """A project with a simulated crowd (8 annotators), scored once; some items left to review."""
    project, manager = crowd_project(k=3, accept_threshold=0.8, max_annotations_per_item=3)
    users = annotators(project, 8)
    crowd = simulate_crowd(n_items=120, accuracies=np.linspace(0.6, 0.95, 8), n_classes=3, per_item=3, seed=1)
    load_crowd(project, users, crowd)
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_service.quality_run_request(project_id=project.pk)
    run = quality_run_execute(run_id=run.pk)
    assert run.to_review > 2
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    return project, manager, reviewer, users, run


@pytest.mark.django_db
def test_manager_queues_a_run_and_reads_it(django_capture_on_commit_callbacks):
    project, manager = crowd_project()
    c = client_for(manager)
    with mock.patch.object(quality_run_task, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            res = c.post(f"/api/projects/{project.pk}/quality-runs")
        assert res.status_code == 202, res.content
        body = res.json()
        assert body["status"] == "queued" and body["id"]
        delay.assert_called_once_with(body["id"])
        again = c.post(f"/api/projects/{project.pk}/quality-runs")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "run_in_progress" and again.json()["error"]["fields"] == {
        "run_id": body["id"]
    }
    quality_run_execute(run_id=body["id"])
    detail = c.get(f"/api/quality-runs/{body['id']}").json()
    assert detail["status"] == "done" and detail["counts"]["scored"] == 0
    assert set(detail["timings"]) == {"read", "pred_probs", "cleanlab", "write", "total"}
    listing = c.get(f"/api/projects/{project.pk}/quality-runs").json()
    assert [r["id"] for r in listing["results"]] == [body["id"]]


@pytest.mark.django_db
def test_run_endpoints_check_roles(scored):
    project, manager, reviewer, users, run = scored
    assert client_for(users[0]).post(f"/api/projects/{project.pk}/quality-runs").status_code == 403
    assert client_for(reviewer).post(f"/api/projects/{project.pk}/quality-runs").status_code == 403
    stranger = client_for(UserFactory())
    assert stranger.post(f"/api/projects/{project.pk}/quality-runs").status_code == 404
    assert stranger.get(f"/api/quality-runs/{run.pk}").status_code == 404
    assert client_for(users[0]).get(f"/api/quality-runs/{run.pk}").status_code == 403
    assert client_for(reviewer).get(f"/api/quality-runs/{run.pk}").status_code == 200
    assert client_for(reviewer).get("/api/quality-runs/999999").json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_run_detail_counts_and_per_item_results(scored):
    project, manager, reviewer, users, run = scored
    c = client_for(reviewer)
    body = c.get(f"/api/quality-runs/{run.pk}").json()
    counts = body["counts"]
    assert counts["scored"] == 120 and counts["annotators"] == 8 and counts["annotations"] == 360
    assert counts["to_review"] == run.to_review and counts["auto_accepted"] == run.auto_accepted
    assert body["pred_probs_source"] == "production" and body["method"] == "crowdlab" and 0 < body["mean_quality"] < 1
    assert body["calibration"] == {"mode": "raw_score", "threshold": 0.8, "audits_sent": 0}
    page = c.get(f"/api/quality-runs/{run.pk}/items", {"outcome": "review", "page_size": 500}).json()
    assert len(page["results"]) == run.to_review and {r["outcome"] for r in page["results"]} == {"review"}
    assert not any(r["audit"] for r in page["results"])
    assert c.get(f"/api/quality-runs/{run.pk}/items", {"outcome": "bogus"}).status_code == 400


@pytest.mark.django_db
def test_review_next_then_resolve(scored, django_assert_max_num_queries):
    project, manager, reviewer, users, run = scored
    c = client_for(reviewer)
    with django_assert_max_num_queries(14):
        res = c.post(f"/api/projects/{project.pk}/review/next")
    assert res.status_code == 200, res.content
    body = res.json()
    item_id = body["item"]["id"]
    assert body["lease"]["id"] and body["quality"]["run_id"] == run.pk and body["quality"]["outcome"] == "review"
    assert len(body["annotations"]) == 3 and {a["annotator"] for a in body["annotations"]} <= {
        u.username for u in users
    }
    assert body["prediction"]["probabilities"] and [lab["key"] for lab in body["labels"]] == ["c0", "c1", "c2"]
    assert c.post(f"/api/projects/{project.pk}/review/next").json()["lease"]["id"] == body["lease"]["id"]

    with django_assert_max_num_queries(22):
        res = c.post(
            f"/api/items/{item_id}/resolve",
            {"label": "c2", "note": "see the guideline", "append_to_guideline": True},
            format="json",
        )
    assert res.status_code == 200, res.content
    out = res.json()
    assert out["method"] == "adjudicated" and out["seq"] and out["guideline_revision_id"]
    gt = GroundTruth.objects.get(item_id=item_id)
    assert (gt.label, gt.decided_by_id, gt.note) == ("c2", reviewer.pk, "see the guideline")
    assert GuidelineRevision.objects.get(pk=out["guideline_revision_id"]).text.endswith("- see the guideline")
    assert c.post(f"/api/projects/{project.pk}/review/next").json()["item"]["id"] != item_id


@pytest.mark.django_db
def test_review_skip_and_empty_queue(scored):
    project, manager, reviewer, users, run = scored
    c = client_for(reviewer)
    seen = set()
    while True:
        res = c.post(f"/api/projects/{project.pk}/review/next")
        if res.status_code == 204:
            break
        item_id = res.json()["item"]["id"]
        assert item_id not in seen
        seen.add(item_id)
        assert c.post(f"/api/items/{item_id}/review/skip", {"reason": "not sure"}, format="json").status_code == 204
    assert len(seen) == run.to_review
    again = c.post(f"/api/items/{item_id}/review/skip")
    assert again.status_code == 409 and again.json()["error"]["code"] == "no_lease"


@pytest.mark.django_db
def test_bad_resolve_requests_are_4xx_and_write_nothing(scored):
    project, manager, reviewer, users, run = scored
    item = Item.objects.filter(project=project, status="disputed").first()
    c = client_for(reviewer)
    res = c.post(f"/api/items/{item.pk}/resolve", {"label": "nope"}, format="json")
    assert res.status_code == 400 and "label" in res.json()["error"]["fields"]
    res = c.post(f"/api/items/{item.pk}/resolve", {"label": "c1", "append_to_guideline": True}, format="json")
    assert res.status_code == 400 and "append_to_guideline" in res.json()["error"]["fields"]
    assert c.post(f"/api/items/{item.pk}/resolve", {}, format="json").status_code == 400
    assert client_for(users[0]).post(f"/api/items/{item.pk}/resolve", {"label": "c1"}, format="json").status_code == 403
    assert (
        client_for(UserFactory()).post(f"/api/items/{item.pk}/resolve", {"label": "c1"}, format="json").status_code
        == 404
    )
    assert c.post("/api/items/99999999/resolve", {"label": "c1"}, format="json").status_code == 404
    assert client_for(users[0]).post(f"/api/projects/{project.pk}/review/next").status_code == 403
    assert not GroundTruth.objects.filter(item=item).exists()


@pytest.mark.django_db
def test_annotators_endpoint(scored, django_assert_max_num_queries):
    project, manager, reviewer, users, run = scored
    with django_assert_max_num_queries(8):
        res = client_for(reviewer).get(f"/api/projects/{project.pk}/annotators")
    assert res.status_code == 200
    rows = {r["username"]: r for r in res.json()}
    assert set(rows) == {u.username for u in users}
    best, worst = rows[users[-1].username], rows[users[0].username]
    assert best["annotations"] == Annotation.objects.filter(annotator=users[-1]).count() > 0
    assert best["quality"] > worst["quality"] and best["run_id"] == run.pk
    assert 0 <= worst["agreement_with_consensus"] <= 1 and best["median_seconds"] > 0 and best["skips"] == 0
    assert client_for(users[0]).get(f"/api/projects/{project.pk}/annotators").status_code == 403


@pytest.mark.django_db
def test_agreement_endpoint(scored, django_assert_max_num_queries):
    project, manager, reviewer, users, run = scored
    with django_assert_max_num_queries(5):
        res = client_for(manager).get(f"/api/projects/{project.pk}/agreement")
    assert res.status_code == 200
    body = res.json()
    assert body["annotations"] == 360 and body["items_with_2_or_more"] == 120
    assert 0 < body["krippendorff_alpha"] < 1 and 0 < body["fleiss_kappa"]["value"] < 1
    fleiss = body["fleiss_kappa"]
    assert fleiss["annotations_per_item"] == 3 and fleiss["items"] == 120 and fleiss["labels_left_out"] == 0
    assert "first 3 labels" in fleiss["definition"] and set(body["definitions"]) == {
        "krippendorff_alpha",
        "fleiss_kappa",
        "pairwise_cohen_kappa",
        "observed_agreement",
    }
    # 8 annotators x 120 items x 3 labels: each pair shares ~13 items on average; only pairs >= 20 are listed.
    assert all(p["shared_items"] >= 20 for p in body["pairwise_cohen_kappa"])
    conf = body["confusion"]
    assert conf["labels"] == ["c0", "c1", "c2"] and len(conf["rates"]) == 3
    assert all(abs(sum(row) - 1) < 1e-3 for row in conf["rates"])


@pytest.mark.django_db
def test_agreement_describes_the_whole_project_when_disputed_items_were_escalated():
    """Unanimous items keep 3 labels, disputed ones get 2 more: Fleiss' kappa is taken over the first
    3 labels of every item (not only the items with exactly 3, which are all unanimous here), alpha
    over all labels; both equal the maintained implementations on the same annotations."""
    import krippendorff
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    project, manager = crowd_project(k=3)
    users = annotators(project, 5)
    rng = np.random.default_rng(7)
    rows = []  # per item, the label codes in the order they were given
    for i in range(60):
        truth = int(rng.integers(0, 3))
        if i % 2 == 0:
            first = [truth] * 3
        else:
            first = [truth, truth, int((truth + 1 + rng.integers(0, 2)) % 3)]
            rng.shuffle(first)
        later = [] if len(set(first)) == 1 else [truth, int(rng.integers(0, 3))]
        codes = [int(c) for c in first] + later
        it = Item.objects.create(project=project, external_id=f"e{i}", required_annotations=len(codes))
        # A different annotator order per item: annotation order, not annotator order, defines "first".
        who = [users[(i + j) % 5] for j in range(len(codes))]
        annotate(it, [(u, f"c{c}") for u, c in zip(who, codes)])
        rows.append(codes)

    body = client_for(manager).get(f"/api/projects/{project.pk}/agreement").json()
    fleiss = body["fleiss_kappa"]
    expected_kappa = sm_fleiss(aggregate_raters(np.array([r[:3] for r in rows]), n_cat=3)[0])
    assert fleiss["value"] == pytest.approx(expected_kappa, abs=1e-9)
    assert fleiss["items"] == 60 and fleiss["items_with_fewer"] == 0 and fleiss["labels_left_out"] == 60
    assert 0 < fleiss["value"] < 0.9  # the items with exactly 3 labels alone are unanimous (kappa 1)
    reliability = np.full((5, 60), np.nan)  # annotators x items
    for i, codes in enumerate(rows):
        for j, c in enumerate(codes):
            reliability[(i + j) % 5, i] = c
    expected_alpha = krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal")
    assert body["krippendorff_alpha"] == pytest.approx(expected_alpha, abs=1e-9)
    assert "every label of every item with at least 2" in body["definitions"]["krippendorff_alpha"]


@pytest.mark.django_db
def test_agreement_lists_pairs_sharing_twenty_items():
    project, manager = crowd_project(k=3)
    a, b, c = annotators(project, 3)
    for i in range(25):
        it = Item.objects.create(project=project, external_id=f"p{i}", required_annotations=3)
        annotate(it, [(a, f"c{i % 3}"), (b, f"c{i % 3}"), (c, f"c{(i + (i % 2)) % 3}")])
    body = client_for(manager).get(f"/api/projects/{project.pk}/agreement").json()
    pairs = {(p["annotator_a"], p["annotator_b"]): p for p in body["pairwise_cohen_kappa"]}
    assert pairs[(a.username, b.username)]["kappa"] == pytest.approx(1.0)
    assert pairs[(a.username, b.username)]["shared_items"] == 25
    assert pairs[(a.username, c.username)]["kappa"] < 0.5


@pytest.mark.django_db
def test_agreement_on_a_project_without_annotations():
    project, manager = crowd_project(k=3)
    body = client_for(manager).get(f"/api/projects/{project.pk}/agreement").json()
    assert body["krippendorff_alpha"] is None and body["fleiss_kappa"] is None and body["pairwise_cohen_kappa"] == []


@pytest.mark.django_db
def test_quality_settings(scored):
    project, manager, reviewer, users, run = scored
    c = client_for(manager)
    assert c.get(f"/api/projects/{project.pk}/quality-settings").json()["auto_run_after_disputed"] == 25
    res = c.patch(f"/api/projects/{project.pk}/quality-settings", {"auto_run_after_disputed": 5}, format="json")
    assert res.status_code == 200 and res.json()["auto_run_after_disputed"] == 5
    assert (
        c.patch(
            f"/api/projects/{project.pk}/quality-settings", {"auto_run_after_disputed": -1}, format="json"
        ).status_code
        == 400
    )
    assert (
        client_for(reviewer)
        .patch(f"/api/projects/{project.pk}/quality-settings", {"auto_run_after_disputed": 1}, format="json")
        .status_code
        == 403
    )
    assert QualityRun.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_review_next_explains_a_consensus_nobody_chose():
    from tests.labeling.review_data import review_project

    project, _, reviewer, items = review_project()
    c = client_for(reviewer)
    body = c.post(f"/api/projects/{project.pk}/review/next").json()
    assert body["item"]["external_id"] == "ticket-00264" and body["quality"]["consensus_label"] == "feature"
    assert body["majority"] == {"label": "bug", "name": "Bug", "votes": 2, "of": 3}
    assert body["suggested_label"] == "bug" and body["current_label"] is None
    assert "point to Feature (quality 0.12), a label no annotator chose; the majority said Bug" in body["explanation"]
    assert c.post(f"/api/items/{items['ticket-00264'].pk}/resolve", {"label": "bug"}, format="json").status_code == 200
    body = c.post(f"/api/projects/{project.pk}/review/next").json()
    assert body["item"]["external_id"] == "ticket-unanimous"
    assert body["explanation"] == "All 3 annotators said Bug; cleanlab's consensus is Feature (quality 0.21)."
    assert body["current_label"] == {"label": "bug", "name": "Bug", "method": "unanimous"}
