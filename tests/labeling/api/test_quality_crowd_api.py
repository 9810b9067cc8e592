"""End to end through the REST API: a project whose simulated crowd (eight annotators of known
accuracy, known true labels, a production model's probabilities) labels items through the queue,
quality runs reopen doubtful items until nothing is reopened, a reviewer decides the review queue, and
a last run reports its accept rule. Checked against an independent recomputation of cleanlab's
consensus on the same annotations: every accepted label is that consensus and some annotator's label,
no unanimous label CROWDLAB contradicts is kept without review, the audit counts match the
reviewer's decisions, and the accepted labels' true error is small."""

from unittest import mock

import numpy as np
import pytest
from django.contrib.auth.models import Permission
from django.db.models import Max

from labeling.models import Annotation, GroundTruth
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute
from labeling.services.quality.snapshot import quality_snapshot_complete, quality_snapshot_read, snapshot_pred_probs
from labeling.stats.consensus import normalize_pred_probs, score_crowd
from tests.conftest import client_for
from tests.labeling.factories import UserFactory, simulate_crowd

N_ITEMS = 150
K = 4
ACCURACIES = np.linspace(0.55, 0.95, 8)
SEED = 11
MAX_ROUNDS = 8
KEYS = [f"c{j}" for j in range(K)]


class Crowd:
    """Known truth and model probabilities (simulate_crowd); each (item, annotator) label drawn on
    demand from its own seeded generator, so the label does not depend on the order of the work."""

    def __init__(self):
        sim = simulate_crowd(n_items=N_ITEMS, accuracies=ACCURACIES, n_classes=K, per_item=3, seed=SEED)
        self.true = sim.true
        self.pred_probs = sim.pred_probs

    def label(self, row: int, annotator: int) -> int:
        rng = np.random.default_rng([SEED, row, annotator])
        t = int(self.true[row])
        if rng.random() < ACCURACIES[annotator]:
            return t
        return (t + int(rng.integers(1, K))) % K


def row_of(external_id: str) -> int:
    return int(external_id.split("-")[1])


def pages(client, url, **params):
    """Every result of a paginated listing (following `next`)."""
    out, res = [], client.get(url, {"page_size": 1000, **params})
    while True:
        assert res.status_code == 200, res.content
        body = res.json()
        out += body["results"]
        if not body["next"]:
            return out
        res = client.get(body["next"])


def annotate_until_empty(clients, project_id, crowd, rng) -> int:
    """Annotators take turns (in a shuffled order each pass), each asking for the next item and
    submitting their label, until every queue answers 204. Returns the number of submissions."""
    active, submitted = list(range(len(clients))), 0
    while active:
        for j in rng.permutation(active).tolist():
            res = clients[j].post(f"/api/projects/{project_id}/queue/next", {}, format="json")
            if res.status_code == 204:
                active.remove(j)
                continue
            assert res.status_code == 200, res.content
            body = res.json()
            label = KEYS[crowd.label(row_of(body["item"]["external_id"]), j)]
            sub = clients[j].post(
                f"/api/assignments/{body['assignment']['id']}/submit",
                {"label": label, "seconds_spent": 6.0},
                format="json",
            )
            assert sub.status_code == 201, sub.content
            assert sub.json()["annotation"]["is_surplus"] is False
            submitted += 1
    return submitted


def run_quality(manager, project_id) -> dict:
    """Queue a run through the API and execute it here (the task's body)."""
    with mock.patch.object(quality_service, "_enqueue"):
        res = manager.post(f"/api/projects/{project_id}/quality-runs")
    assert res.status_code == 202, res.content
    quality_run_execute(run_id=res.json()["id"])
    detail = manager.get(f"/api/quality-runs/{res.json()['id']}").json()
    assert detail["status"] == "done", detail["error"]
    return detail


def recompute(project_id, crowd, run, external: dict) -> dict:
    """cleanlab's consensus on the annotations in the database and the ingested probabilities, built
    independently of the run (items and annotators in id order, labels in label order) and checked to
    be the very inputs a run's snapshot reads (`external`: item id -> external id).
    Returns {item_id: (consensus key, quality, the labels annotators chose)}."""
    annotations = Annotation.objects.filter(project_id=project_id)
    assert annotations.aggregate(m=Max("id"))["m"] == run["snapshot_max_annotation_id"], "annotated since the run"
    rows = list(annotations.values_list("item_id", "annotator_id", "label"))
    item_ids = np.array(sorted({r[0] for r in rows}))
    annotator_ids = np.array(sorted({r[1] for r in rows}))
    labels = np.full((len(item_ids), len(annotator_ids)), np.nan)
    for item_id, annotator_id, key in rows:
        labels[np.searchsorted(item_ids, item_id), np.searchsorted(annotator_ids, annotator_id)] = KEYS.index(key)
    pred_probs = normalize_pred_probs(crowd.pred_probs[[row_of(external[i]) for i in item_ids.tolist()]])

    snap = quality_snapshot_complete(quality_snapshot_read(project_id=project_id))
    assert np.array_equal(snap.item_ids, item_ids) and np.array_equal(snap.annotator_ids, annotator_ids)
    assert np.array_equal(snap.labels, labels, equal_nan=True)
    snap_probs, source = snapshot_pred_probs(snap, seed=run["seed"])
    assert source == run["pred_probs_source"] == "production"
    np.testing.assert_allclose(snap_probs, pred_probs, rtol=0, atol=1e-12)

    scores = score_crowd(labels, pred_probs, seed=run["seed"], normalized=True)
    return {
        int(item_id): (
            KEYS[int(scores.consensus[i])],
            float(np.nan_to_num(scores.quality[i], nan=0.0)),
            {KEYS[int(v)] for v in labels[i][~np.isnan(labels[i])]},
        )
        for i, item_id in enumerate(item_ids.tolist())
    }


@pytest.mark.django_db
def test_quality_loop_with_a_simulated_crowd_through_the_api(postgres):
    crowd = Crowd()
    rng = np.random.default_rng(SEED)
    creator = UserFactory()
    creator.user_permissions.add(Permission.objects.get(codename="add_project", content_type__app_label="labeling"))
    manager = client_for(creator)
    res = manager.post(
        "/api/projects",
        {
            "name": "Simulated crowd",
            "labels": [{"key": key, "name": f"Class {j}"} for j, key in enumerate(KEYS)],
            "annotations_per_item": 3,
            "max_annotations_per_item": 5,
            "accept_mode": "calibrated",
            "audit_rate": 0.1,
        },
        format="json",
    )
    assert res.status_code == 201, res.content
    pid = res.json()["id"]
    # Runs are requested by the test only (no automatic run after disputed items).
    res = manager.patch(f"/api/projects/{pid}/quality-settings", {"auto_run_after_disputed": 0}, format="json")
    assert res.status_code == 200 and res.json()["accept_mode"] == "calibrated", res.content

    users = [UserFactory() for _ in range(len(ACCURACIES))]
    reviewer_user = UserFactory()
    for u, role in [*((u, "annotator") for u in users), (reviewer_user, "reviewer")]:
        res = manager.post(f"/api/projects/{pid}/members", {"username": u.username, "role": role}, format="json")
        assert res.status_code == 201, res.content
    rows = [
        {
            "external_id": f"sim-{i}",
            "payload": {"text": f"item {i}"},
            "prediction": {
                "model_version": "sim-v1",
                "label": KEYS[int(np.argmax(crowd.pred_probs[i]))],
                "probabilities": {key: float(crowd.pred_probs[i, j]) for j, key in enumerate(KEYS)},
            },
        }
        for i in range(N_ITEMS)
    ]
    res = manager.post(f"/api/projects/{pid}/items", rows, format="json")
    assert res.status_code == 201 and res.json()["created"] == N_ITEMS, res.content

    clients = [client_for(u) for u in users]
    assert annotate_until_empty(clients, pid, crowd, rng) == 3 * N_ITEMS

    # Quality runs until one reopens nothing; annotators answer each run's reopened items via the queue.
    runs = []
    for _ in range(MAX_ROUNDS):
        runs.append(run_quality(manager, pid))
        if runs[-1]["counts"]["reopened_for_more"] == 0:
            break
        assert annotate_until_empty(clients, pid, crowd, rng) == runs[-1]["counts"]["reopened_for_more"]
    else:
        pytest.fail(f"a run still reopened items after {MAX_ROUNDS} rounds")
    final = runs[-1]
    results = {r["item_id"]: r for r in pages(manager, f"/api/quality-runs/{final['id']}/items")}
    # Nothing changed since the run: the same inputs.
    expected = recompute(pid, crowd, final, {i: r["external_id"] for i, r in results.items()})
    assert set(results) == set(expected) and final["counts"]["scored"] == N_ITEMS

    truth = dict(GroundTruth.objects.filter(item__project_id=pid).values_list("item_id", "label"))
    for item_id, r in results.items():
        consensus, quality, chosen = expected[item_id]
        assert r["consensus_label"] == consensus, (item_id, r, expected[item_id])
        assert r["quality"] == pytest.approx(quality, abs=1e-9)
        if r["outcome"] == "accepted":
            # An accepted label is cleanlab's consensus on these inputs, and some annotator's label.
            assert truth.get(item_id) == consensus and consensus in chosen, (item_id, r, truth.get(item_id), chosen)
            item = manager.get(f"/api/projects/{pid}/items", {"external_id": r["external_id"]}).json()["results"][0]
            assert item["status"] == "resolved"

    # A unanimous label that CROWDLAB's consensus contradicts (agreement 0: never accepted) goes to a
    # person; it is never kept silently.
    contradicted = {i for i, (c, _, chosen) in expected.items() if len(chosen) == 1 and c not in chosen}
    for item_id in contradicted:
        assert results[item_id]["outcome"] == "review", results[item_id]
    for item_id, (c, _, chosen) in expected.items():
        if chosen == {c} and results[item_id]["outcome"] == "kept":
            assert truth.get(item_id) == c

    # The reviewer decides every item in review with its true label.
    reviewer = client_for(reviewer_user)
    decided = {}
    while True:
        res = reviewer.post(f"/api/projects/{pid}/review/next")
        if res.status_code == 204:
            break
        assert res.status_code == 200, res.content
        body = res.json()
        item_id = body["item"]["id"]
        assert item_id not in decided, "an item came back to review after it was decided"
        label = KEYS[int(crowd.true[row_of(body["item"]["external_id"])])]
        res = reviewer.post(f"/api/items/{item_id}/resolve", {"label": label}, format="json")
        assert res.status_code == 200 and res.json()["method"] == "adjudicated", res.content
        decided[item_id] = label
    in_review = {i for i, r in results.items() if r["outcome"] == "review"}
    assert in_review <= set(decided) and contradicted <= set(decided)
    assert pages(manager, f"/api/projects/{pid}/items", status="disputed") == []
    assert pages(manager, f"/api/projects/{pid}/items", status="open") == []

    last = run_quality(manager, pid)
    rule = last["calibration"]
    # The audit record: every audited item a reviewer then decided, once, wrong where the decision
    # differs from the consensus of the latest run that audited it. An audit nobody has decided stays
    # in review at later runs (it is never accepted meanwhile), so every audit sent reaches a reviewer.
    latest_audit = {}
    for run in runs:
        for r in pages(manager, f"/api/quality-runs/{run['id']}/items", outcome="review"):
            if r["audit"]:
                latest_audit[r["item_id"]] = r
    assert set(latest_audit) <= set(decided)
    audited = list(latest_audit.values())
    wrong = [r for r in audited if r["consensus_label"] != decided[r["item_id"]]]
    audits_sent = sum(run["calibration"]["audits_sent"] for run in runs)
    assert rule["mode"] == "calibrated" and rule["decisions"] == len(decided), rule
    assert rule["audit"]["audited"] == len(audited), (rule["audit"], len(audited), audits_sent)
    assert rule["audit"]["wrong"] == len(wrong), (rule["audit"], wrong)

    # The true error of the labels the runs accepted (the benchmark benchmarks/quality_adaptive.py
    # measures it on large simulated crowds; this sample is small).
    accepted = dict(
        GroundTruth.objects.filter(item__project_id=pid, method="consensus").values_list("item__external_id", "label")
    )
    errors = sum(label != KEYS[int(crowd.true[row_of(ext)])] for ext, label in accepted.items())
    error = errors / max(len(accepted), 1)
    summary = (
        f"accepted {len(accepted)} of {N_ITEMS}, true error {error:.3f} ({errors} wrong); "
        f"{len(runs) + 1} runs; {len(decided)} reviewed; {Annotation.objects.filter(project_id=pid).count()} "
        f"annotations; audit {rule['audit']} of {audits_sent} sent; rule {rule.get('rule')}; "
        f"run seeds {[run['seed'] for run in [*runs, last]]}"
    )
    assert len(accepted) > 0, summary
    assert error <= 0.08, summary
