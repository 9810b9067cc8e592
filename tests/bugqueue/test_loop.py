"""The bug → data → model gate loop end to end, through the API, on PostgreSQL with Celery in-process:
a production model's failures are filed as a bug from late ground truth, a reported failure whose
expected label disagrees with the ground truth goes to a reviewer, the fixed bug flows into a gate
dataset with mined look-alikes that annotators label, the labels join in one batched version, the
model that fixed the bug is promoted, a candidate that re-breaks the bug's items is evaluated after
the version change (it fails and promotion answers 409), a candidate whose slice drops while its
total passes is flagged, and a shadow model's live accuracy sits beside production's."""

from datetime import timedelta

from django.utils import timezone

from bugqueue.models import Bug, BugProjectSettings, DatasetMember, DatasetVersion
from bugqueue.tasks import datasets_absorb_sweep_task
from labeling.models import Item, ItemStatus, Role
from tests.conftest import client_for
from tests.labeling.factories import UserFactory, add_member

TEXT = {
    "account": "cannot log in password reset two-factor locked account {}",
    "billing": "invoice charged twice refund payment card {}",
    "shipping": "parcel tracking courier delivery late box {}",
}


def ok(res, status=(200, 201)):
    assert res.status_code in ((status,) if isinstance(status, int) else status), (res.status_code, res.content[:500])
    return res.json() if res.content else None


def rows_for(model, ids, wrong=(), wrong_label="billing", days_ago=3):
    """Ingestion rows: `model` predicts each item's true label except for `wrong`."""
    at = (timezone.now() - timedelta(days=days_ago)).isoformat()
    out = []
    for ext, truth, channel in ids:
        label = wrong_label if ext in wrong else truth
        probs = {k: (0.8 if k == label else 0.1) for k in TEXT}
        out.append(
            {
                "external_id": ext,
                "payload": {"text": TEXT[truth].format(ext), "channel": channel},
                "prediction": {"model_version": model, "label": label, "probabilities": probs, "predicted_at": at},
            }
        )
    return out


def preds(ids, wrong=(), wrong_label="billing"):
    return [{"external_id": e, "label": wrong_label if e in wrong else t} for e, t, _ in ids]


def test_the_loop_end_to_end(postgres_tx, eager_celery, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path  # the similarity index's files
    # In-process Celery has no delayed tasks, so Loupe absorbs at once there; schedule as a worker
    # would (the pass sent with its countdown runs now, finds itself due later, and does nothing).
    from bugqueue.services import absorb

    schedule = absorb.datasets_absorb_schedule
    monkeypatch.setattr(absorb, "datasets_absorb_schedule", lambda **kw: schedule(**{**kw, "at_once": False}))
    staff = UserFactory(is_staff=True)
    api = client_for(staff)
    project = ok(
        api.post(
            "/api/projects",
            {
                "name": "Support routing",
                "labels": [{"key": k, "name": k.title()} for k in TEXT],
                "annotations_per_item": 1,
            },
            format="json",
        )
    )
    pid = project["id"]
    reviewer, annotator = UserFactory(), UserFactory()
    from labeling.models import Project

    p = Project.objects.get(pk=pid)
    add_member(p, reviewer, Role.REVIEWER)
    add_member(p, annotator, Role.ANNOTATOR)
    ok(api.patch(f"/api/projects/{pid}", {"slice_fields": ["channel"]}, format="json"))

    # 40 items per class, half by email and half by chat. v1 (production) routes 8 account tickets to billing.
    ids = [(f"{k[:3]}-{i:02d}", k, "email" if i % 2 else "chat") for k in TEXT for i in range(40)]
    flipped = {f"acc-{i:02d}" for i in range(8)}
    ok(api.post(f"/api/projects/{pid}/items", rows_for("v1", ids, wrong=flipped | {"acc-10"}), format="json"))
    ok(api.post(f"/api/projects/{pid}/models", {"version": "v1"}, format="json"), 201)
    ok(api.post(f"/api/projects/{pid}/models/v1/promote", {"stage": "production"}, format="json"))

    # Late ground truth: the flipped tickets are account (filed as a bug of v1: billing → account); acc-10's
    # imported label says billing, and the bill tickets 0-19 and ship tickets 0-19 are confirmed.
    truth = [{"external_id": e, "label": "account", "source": "crm"} for e in sorted(flipped)]
    truth += [{"external_id": "acc-10", "label": "billing", "source": "crm"}]
    truth += [
        {"external_id": f"{k}-{i:02d}", "label": lab, "source": "crm"}
        for k, lab in (("bil", "billing"), ("shi", "shipping"))
        for i in range(20)
    ]
    ok(api.post(f"/api/projects/{pid}/ground-truth", truth, format="json"))
    filed = Bug.objects.get(project_id=pid, failures__item__external_id="acc-00")
    assert filed.failures.count() == 8

    # A person reports acc-10 and acc-11 as account tickets the model billed.
    reported = ok(
        api.post(
            "/api/bugs",
            {
                "project": pid,
                "title": "Password resets billed",
                "kind": "failed_prediction",
                "failures": [
                    {"external_id": "acc-10", "predicted_label": "billing", "expected_label": "account"},
                    {"external_id": "acc-11", "predicted_label": "billing", "expected_label": "account"},
                ],
            },
            format="json",
        ),
        201,
    )

    # A gate dataset, grown from resolved bugs; the bill/ship tickets with ground truth go in by search.
    ds = ok(
        api.post(
            "/api/datasets",
            {"project": pid, "name": "resolved bugs", "gate": True, "min_accuracy": 0.8},
            format="json",
        ),
        201,
    )
    ok(
        api.post(
            f"/api/datasets/{ds['id']}/versions",
            {"add_search": {"q": "bil-", "status": "resolved", "limit": 100}},
            format="json",
        ),
        201,
    )
    ok(
        api.post(
            f"/api/datasets/{ds['id']}/versions",
            {"add_search": {"q": "shi-", "status": "resolved", "limit": 100}},
            format="json",
        ),
        201,
    )

    # Resolving the reported bug first: acc-11 joins as account; acc-10 (billing in the ground truth) waits for a reviewer.
    ok(api.post(f"/api/bugs/{reported['id']}/resolve", {"resolution": "fixed", "datasets": [ds["id"]]}, format="json"))
    (flow2,) = ok(api.get(f"/api/bugs/{reported['id']}/dataset-flows"))
    assert (flow2["added"], flow2["conflicts"]) == (1, 1)
    # Resolving the filed bug: its 8 failures join at once, 6 unlabeled look-alikes are mined for labeling
    # (items already in the dataset or waiting for it, like acc-10, are never mined).
    ok(
        api.post(
            f"/api/bugs/{filed.pk}/resolve",
            {"resolution": "fixed", "datasets": [ds["id"]], "mine_similar": 6},
            format="json",
        )
    )
    (flow,) = ok(api.get(f"/api/bugs/{filed.pk}/dataset-flows"))
    assert (flow["status"], flow["added"], flow["pending"], flow["mined"], flow["conflicts"]) == ("done", 8, 6, 6, 0)
    acc10 = Item.objects.get(project_id=pid, external_id="acc-10")
    assert acc10.status == ItemStatus.CONFLICT
    assert not DatasetMember.objects.filter(dataset_id=ds["id"], item=acc10).exists()
    page = client_for(staff)
    page.force_login(staff)
    html = page.get(f"/bugs/{reported['id']}").content.decode()
    assert 'id="progress-conflicts"' in html and "1 item waits for a reviewer" in html
    versions_before = DatasetVersion.objects.filter(dataset_id=ds["id"]).count()
    assert versions_before == 4  # two by search, one per bug resolution

    # The reviewer sees both labels and decides account.
    review = ok(client_for(reviewer).post(f"/api/projects/{pid}/review/next", {}, format="json"))
    assert review["item"]["external_id"] == "acc-10"
    assert {c["label"] for c in review["conflict"]["claims"]} == {"account"}
    ok(client_for(reviewer).post(f"/api/items/{acc10.pk}/resolve", {"label": "account"}, format="json"))

    # The annotator labels the mined look-alikes (served first); nothing joins before the batch is due.
    labeled = []
    for _ in range(6):
        claim = ok(client_for(annotator).post(f"/api/projects/{pid}/queue/next", {}, format="json"))
        ext = claim["item"]["external_id"]
        true = {"acc": "account", "bil": "billing", "shi": "shipping"}[ext[:3]]
        ok(
            client_for(annotator).post(
                f"/api/assignments/{claim['assignment']['id']}/submit", {"label": true}, format="json"
            )
        )
        labeled.append(ext)
    assert DatasetVersion.objects.filter(dataset_id=ds["id"]).count() == versions_before
    settings_row = BugProjectSettings.objects.get(pk=pid)
    assert settings_row.absorb_due_at is not None and settings_row.absorb_due_at > timezone.now()
    # Ten minutes later the sweep runs the due pass: one version with the 6 look-alikes and acc-10.
    BugProjectSettings.objects.filter(pk=pid).update(absorb_due_at=timezone.now() - timedelta(seconds=1))
    datasets_absorb_sweep_task()
    latest = DatasetVersion.objects.filter(dataset_id=ds["id"]).order_by("-number").first()
    assert latest.number == versions_before + 1 and latest.added == 7
    assert DatasetMember.objects.get(dataset_id=ds["id"], item=acc10, removed_in__isnull=True).label == "account"

    # v2 fixes the bug: evaluated, it passes the gate and goes to production.
    every = [(e, t, c) for e, t, c in ids]
    ev2 = ok(
        api.post(
            "/api/evaluations", {"project": pid, "model_version": "v2", "predictions": preds(every)}, format="json"
        ),
        201,
    )
    assert ev2["passed"], ev2
    ok(api.post(f"/api/projects/{pid}/models/v2/promote", {"stage": "production"}, format="json"))

    # The dataset gets one more item (a new version), so v2 has no result on the latest version.
    unlabeled = api.post(f"/api/datasets/{ds['id']}/versions", {"add": ["bil-30"]}, format="json")
    assert unlabeled.status_code == 400 and unlabeled.json()["error"]["fields"]["without_ground_truth"] == ["bil-30"]
    ok(api.post(f"/api/projects/{pid}/ground-truth", [{"external_id": "shi-30", "label": "shipping"}], format="json"))
    ok(api.post(f"/api/datasets/{ds['id']}/versions", {"add": ["shi-30"]}, format="json"), 201)

    # v5 re-breaks the resolved bug's tickets: compared with v2 on the same (new) version, it fails.
    ev5 = ok(
        api.post(
            "/api/evaluations",
            {"project": pid, "model_version": "v5", "predictions": preds(every, wrong=flipped)},
            format="json",
        ),
        201,
    )
    (r5,) = ev5["results"]
    assert r5["baseline_model"] == "v2" and r5["regressions"] == 8
    assert r5["regressions_by_bug"] == {str(filed.pk): 8} and not r5["passed"]
    refused = api.post(f"/api/projects/{pid}/models/v5/promote", {"stage": "production"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "gate_failed"
    assert refused.json()["error"]["fields"]["datasets"][0]["name"] == "resolved bugs"
    assert api.post(f"/api/projects/{pid}/models/v5/promote", {"stage": "canary"}, format="json").status_code == 409

    # v6 gets 4 chat billing tickets wrong (not bug items): the total passes, the chat slice is flagged.
    chat_bills = {e for e, t, c in every if t == "billing" and c == "chat"}
    chat_bills = set(sorted(chat_bills)[:4])
    ev6 = ok(
        api.post(
            "/api/evaluations",
            {
                "project": pid,
                "model_version": "v6",
                "predictions": preds(every, wrong=chat_bills, wrong_label="shipping"),
            },
            format="json",
        ),
        201,
    )
    (r6,) = ev6["results"]
    assert r6["passed"] and r6["regressions"] == 0
    chat = next(s for s in r6["slices"] if s["field"] == "channel" and s["value"] == "chat")
    assert chat["dropped"] and chat["delta"] < -0.05 and any("channel=chat" in w for w in r6["warnings"])
    ok(api.post(f"/api/projects/{pid}/models/v6/promote", {"stage": "shadow"}, format="json"))

    # Live: production (v2) and the shadow (v6) both predict every ticket; on the tickets that have
    # ground truth, the shadow's live accuracy sits beside production's.
    ok(api.post(f"/api/projects/{pid}/items", rows_for("v2", every, days_ago=2), format="json"))
    ok(
        api.post(
            f"/api/projects/{pid}/items",
            rows_for("v6", every, wrong=chat_bills, wrong_label="shipping", days_ago=2),
            format="json",
        )
    )
    from labeling.tasks import feedback_refresh

    feedback_refresh(pid)
    report = ok(api.get(f"/api/projects/{pid}/feedback-delay"))
    stages = {row["stage"]: row for row in report["live_by_stage"]}
    production, shadow = stages["production"], stages["shadow"]
    assert [m["model_version"] for m in production["model_versions"]] == ["v2"]
    assert [m["model_version"] for m in shadow["model_versions"]] == ["v6"]
    assert production["labeled"] == shadow["labeled"] > 40
    assert production["accuracy_on_labeled"] == 1.0
    assert shadow["correct"] == shadow["labeled"] - 4
    only_shadow = ok(api.get(f"/api/projects/{pid}/feedback-delay?stage=shadow&slice=channel"))
    assert {row["stage"] for row in only_shadow["live_by_stage"]} == {"shadow"}
    by_value = {v["value"]: v for v in only_shadow["live_by_slice"]["values"]}
    assert by_value["chat"]["correct"] == by_value["chat"]["labeled"] - 4
    assert by_value["email"]["correct"] == by_value["email"]["labeled"]
