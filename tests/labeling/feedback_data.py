"""Ingesting predictions and reading the delay report, for the feedback-delay tests; `stage_world`
builds the small project the stage and slice splits are checked on (numbers counted by hand)."""

from datetime import UTC, datetime, timedelta

from labeling.models import Item
from labeling.selectors.feedback import DelayFilters, feedback_delay_report
from labeling.services.feedback import ground_truth_import
from labeling.services.feedback_rollup import feedback_rollup_refresh
from labeling.services.ingestion import items_ingest
from labeling.services.projects import project_update
from labeling.services.registry import model_register, model_stage_write

PROBS = {"pos": 0.8, "neg": 0.15, "neu": 0.05}


def ingest(project, n, *, at, prefix="e", model_version="v1", probs=PROBS):
    rows = [
        {
            "external_id": f"{prefix}{i}",
            "payload": {"text": str(i)},
            "prediction": {
                "model_version": model_version,
                "label": "pos",
                "probabilities": probs,
                "predicted_at": (at(i) if callable(at) else at).isoformat(),
            },
        }
        for i in range(n)
    ]
    items_ingest(project=project, rows=rows)
    return list(Item.objects.filter(project=project, external_id__startswith=prefix).order_by("id"))


def report(project, now=None, **filters):
    return feedback_delay_report(project=project, filters=DelayFilters(**filters), now=now)


# item:      0      1      2      3      4      5      6      7      8      9
CHANNEL = ["web", "web", "web", "web", "web", "web", "app", "app", "app", None]
TRUTH = ["pos", "pos", "pos", "neg", "pos", "neg", "pos", "pos", None, None]
PROD = ["pos"] * 10  # production "prod-1": right on 0 1 2 4 6 7, i.e. 6 of the 8 labeled
SHADOW = ["pos", "pos", "pos", "neg", "neg", "neg", "pos", "pos", "pos", "pos"]  # shadow "shadow-2": 7 of 8
OLD = {0: "pos", 1: "pos"}  # "old-0", never registered, on items 0 and 1: 2 of 2
STAGE_PROBS = {"pos": 0.7, "neg": 0.2, "neu": 0.1}  # prod-1 only: mean confidence 0.7


def _stage_rows(labels, model_version, probabilities, at):
    rows = []
    for i, label in labels.items():
        prediction = {"model_version": model_version, "label": label, "predicted_at": at.replace(minute=i).isoformat()}
        if probabilities:
            prediction["probabilities"] = STAGE_PROBS
        payload = {"text": f"t{i}"} | ({"channel": CHANNEL[i]} if CHANNEL[i] else {})
        rows.append({"external_id": f"e{i}", "payload": payload, "prediction": prediction})
    return rows


def stage_world(project, user, *, now=None):
    """Ten items (channel web/app/missing) predicted three days ago, at noon UTC, by a production
    and a shadow model (and two by an unregistered one), eight with imported ground truth (source
    chargeback) a day ago; a candidate registered that never predicted; slice fields channel and
    customer_tier; rollups refreshed."""
    now = now or datetime.now(tz=UTC)
    at = (now - timedelta(days=3)).replace(hour=12, second=0, microsecond=0)
    items_ingest(project=project, rows=_stage_rows(dict(enumerate(PROD)), "prod-1", True, at))
    items_ingest(project=project, rows=_stage_rows(dict(enumerate(SHADOW)), "shadow-2", False, at))
    items_ingest(project=project, rows=_stage_rows(OLD, "old-0", False, at))
    observed = (now - timedelta(days=1)).isoformat()
    ground_truth_import(
        project=project,
        rows=[
            {"external_id": f"e{i}", "label": t, "source": "chargeback", "observed_at": observed}
            for i, t in enumerate(TRUTH)
            if t
        ],
    )
    prod = model_register(project=project, actor=user, version="prod-1")
    model_stage_write(model=prod, to_stage="production", actor=user)
    shadow = model_register(project=project, actor=user, version="shadow-2")
    model_stage_write(model=shadow, to_stage="shadow", actor=user)
    model_register(project=project, actor=user, version="cand-3")
    project_update(project=project, actor=user, slice_fields=["channel", "customer_tier"])
    project.refresh_from_db()
    feedback_rollup_refresh(project_id=project.pk)
    return project
