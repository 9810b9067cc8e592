"""Demo bugs for the demo project (called by `manage.py loupe_demo`). Idempotent: does nothing when
the project already has its demo bugs. Everything goes through the services."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bugqueue.models import Bug
from bugqueue.selectors.triage import parse_week
from bugqueue.services.autofile import feedback_slo_record
from bugqueue.services.bugs import bug_resolve, bug_update, comment_add
from bugqueue.services.digest import digest_build
from bugqueue.services.report import bug_report
from bugqueue.services.tags import tags_seed
from labeling.models import Prediction, Project

User = get_user_model()
MARK = "demo:"


ACCOUNT_WORDS = ("log in", "password", "two-factor", "merge", "admin rights", "delete my account", "authenticator")
SHIPPING_WORDS = ("parcel", "tracking", "courier", "delivery", "return", "box arrived")


def _items_predicted(project, label, n, words):
    """Demo items the model predicted as `label` although their text is about something else."""
    about = Q()
    for w in words:
        about |= Q(item__payload__text__icontains=w)
    return list(
        Prediction.objects.filter(about, item__project=project, label=label)
        .order_by("item_id")
        .values_list("item__external_id", "model_version", "predicted_at")[:n]
    )


def _failures(rows, expected):
    return [
        {
            "external_id": ext,
            "model_version": mv,
            "predicted_label": None,
            "expected_label": expected,
            "predicted_at": at,
        }
        for ext, mv, at in rows
    ]


@transaction.atomic
def demo_bugs_load(*, project: Project) -> int:
    """Create the demo bugs of `project` (a handful, in every state). Returns how many were made."""
    if Bug.objects.filter(project=project, fingerprint__startswith=MARK).exists():
        return 0
    tags_seed()  # the curated tags (normally from the data migration; idempotent)
    before = Bug.objects.filter(project=project).count()
    users = {u.username: u for u in User.objects.filter(username__startswith="demo-")}
    manager, reviewer = users.get("demo-manager", project.created_by), users.get("demo-reviewer")
    annotator = users.get("demo-annotator", manager)
    now = timezone.now()
    day = timedelta(days=1)

    def rep(days_ago, **kw):
        kw.setdefault("reporter", manager)
        return bug_report(project=project, now=now - days_ago * day if days_ago else timezone.now(), **kw)

    # 1. The model confuses account-access tickets with billing: reported three times over two weeks.
    billing = _items_predicted(project, "billing", 9, ACCOUNT_WORDS)
    for i, days_ago in enumerate((16, 9, 2)):
        failures = [dict(f, predicted_label="billing") for f in _failures(billing[i * 3 : i * 3 + 3], "account")]
        first = rep(
            days_ago,
            title="tickets-v1 routes account-access tickets to billing",
            kind="failed_prediction",
            fingerprint=MARK + "account-as-billing",
            model_version="tickets-v1",
            priority="p1",
            tags=["data_drift"],
            failures=failures,
            description="Login and 2FA tickets that mention a payment card are sent to the billing team.",
        )
    confusion = first.bug
    bug_update(
        bug=confusion,
        actor=manager,
        status="triaged",
        assignee=reviewer.username if reviewer else None,
        note="Seen in the weekly triage.",
    )
    comment_add(
        bug=confusion,
        author=reviewer or manager,
        body="Most of these mention 'card' (the 2FA card). The training set has almost no such tickets.",
    )

    # 2. A preprocessing bug: accents are stripped, so French tickets become gibberish.
    for days_ago, text in (
        (12, "Je n'arrive pas à me connecter depuis la mise à jour"),
        (5, "La facture de février est erronée, merci de corriger"),
        (1, "Où est mon colis ? Commandé il y a deux semaines"),
    ):
        accents = rep(
            days_ago,
            title="Accented characters dropped before tokenization",
            kind="data_quality",
            fingerprint=MARK + "accents",
            priority="p0",
            tags=["dropped_special_characters"],
            reporter=annotator,
            model_version="tickets-v1",
            failures=[{"payload": {"text": text, "channel": "email"}, "predicted_label": "bug"}],
            description="The ASCII-folding step in the feature pipeline removes every accented letter.",
        ).bug
    bug_update(bug=accents, actor=manager, status="in_progress", assignee=manager.username)
    comment_add(bug=accents, author=manager, body="Fix in review: keep NFKC, drop the ASCII folding.")

    # 3. Untriaged: a feature is missing for phone tickets.
    rep(
        3,
        title="channel is empty for tickets transcribed from phone calls",
        kind="data_quality",
        fingerprint=MARK + "channel-missing",
        tags=["missing_feature_values"],
        reporter=annotator,
        description="The call-transcription service does not set `channel`; the model treats them as email.",
    )

    # 4. The feedback-delay SLO was breached (what the delay monitor reports).
    feedback_slo_record(
        project_id=project.pk,
        breached=True,
        observed_seconds=10.5 * 86400,
        target_seconds=project.slo_target_seconds,
        quantile=project.slo_quantile,
        now=now - 4 * day,
    )

    # 5. Resolved, then it recurred with a newer prediction: a regression.
    shipping = _items_predicted(project, "billing", 2, SHIPPING_WORDS)
    carrier = rep(
        25,
        title="Shipping tickets routed to billing after the carrier rename",
        kind="failed_prediction",
        fingerprint=MARK + "carrier-rename",
        model_version="tickets-v1",
        tags=["schema_change"],
        failures=[
            dict(f, predicted_label="billing", predicted_at=now - 26 * day) for f in _failures(shipping[:1], "shipping")
        ],
    ).bug
    bug_update(bug=carrier, actor=manager, status="triaged")
    bug_resolve(bug=carrier, actor=manager, resolution="fixed", note="Mapped the new carrier codes.")
    # The retrained model (a version the bug was not resolved against) fails the same way: regression.
    rep(
        0,
        title="Shipping tickets routed to billing after the carrier rename",
        kind="failed_prediction",
        fingerprint=MARK + "carrier-rename",
        model_version="tickets-v2",
        failures=[
            dict(f, predicted_label="billing", model_version="tickets-v2", predicted_at=None)
            for f in _failures(shipping[1:2], "shipping")
        ],
    )

    # 6. Fixed, 7. won't fix, 8. a duplicate of 1.
    dupes = rep(
        20,
        title="Duplicated tickets in the evaluation export",
        kind="user_report",
        fingerprint=MARK + "dupes",
        priority="p3",
        tags=["copy_paste_anomaly", "data_leakage"],
    ).bug
    bug_resolve(bug=dupes, actor=manager, resolution="fixed", note="The export now deduplicates by ticket id.")
    seed = rep(
        18,
        title="Retraining job does not set a random seed",
        kind="other",
        fingerprint=MARK + "seed",
        priority="p3",
        tags=["unset_random_seed"],
    ).bug
    bug_resolve(bug=seed, actor=manager, resolution="wont_fix", note="The new training pipeline replaces this job.")
    login = rep(
        6,
        title="Login problems end up in the billing queue",
        kind="user_report",
        fingerprint=MARK + "login-billing",
        reporter=annotator,
    ).bug
    bug_resolve(bug=login, actor=manager, resolution="duplicate", duplicate_of=confusion.pk)

    # A stored digest of last week, so the digest page has something to show.
    digest_build(project=project, week_start=parse_week(None) - 7 * day)
    return Bug.objects.filter(project=project).count() - before


DEMO_DATASET = "Support routing (validation)"


def demo_datasets_load(*, project: Project) -> int:
    """A validation dataset built from labeled demo tickets and the demo's fixed bugs, and two model
    versions evaluated on it (one passes, one regresses). Idempotent: returns 0 when already there."""
    from bugqueue.models import Dataset, FlowStatus
    from bugqueue.services.datasets import (
        Addition,
        bug_datasets_flow_run,
        bug_datasets_flow_start,
        dataset_create,
        dataset_version_create,
    )
    from bugqueue.services.evaluations import evaluation_run, predictions_parse
    from labeling.models import GroundTruth
    from labeling.services.registry import model_ensure, model_stage_write

    if Dataset.objects.filter(project=project, name=DEMO_DATASET).exists():
        return 0
    manager = User.objects.filter(username="demo-manager").first() or project.created_by
    dataset = dataset_create(
        project=project,
        actor=manager,
        name=DEMO_DATASET,
        min_accuracy=0.8,
        description="Tickets with known routing, grown from every fixed routing bug.",
    )
    truth = list(
        GroundTruth.objects.filter(item__project=project).order_by("item_id").values_list("item_id", "label")[:80]
    )
    dataset_version_create(
        dataset_id=dataset.pk,
        actor=manager,
        add=[Addition(i, lab) for i, lab in truth],
        note="Initial slice: tickets whose routing was confirmed in production.",
    )
    for bug in Bug.objects.filter(
        project=project, status="resolved", resolution="fixed", failures__isnull=False
    ).distinct():
        flow = bug_datasets_flow_start(bug=bug, actor=manager, dataset_ids=[dataset.pk])
        if flow.status != FlowStatus.DONE:
            bug_datasets_flow_run(flow_id=flow.pk)
    rows = list(dataset.members.filter(removed_in__isnull=True).values_list("item__external_id", "label", "item_id"))
    production = dict(
        Prediction.objects.filter(item_id__in=[r[2] for r in rows], model_version="tickets-v1").values_list(
            "item_id", "label"
        )
    )
    v1 = [{"external_id": e, "label": production.get(i, lab)} for e, lab, i in rows]
    v2 = [{"external_id": e, "label": lab} for e, lab, i in rows]  # the retrained model fixes them all...
    keys = list(project.labels.values_list("key", flat=True))
    for _k, row in enumerate(v2[:12]):  # ...but breaks a dozen it used to get right
        row["label"] = keys[(keys.index(row["label"]) + 1) % len(keys)]
    evaluation_run(
        project=project, actor=manager, model_version="tickets-v1", batch=predictions_parse(project=project, rows=v1)
    )
    # tickets-v1 serves the demo's predictions: in production, so tickets-v2 is compared with it
    model_stage_write(
        model=model_ensure(project=project, version="tickets-v1", actor=manager), to_stage="production", actor=manager
    )
    evaluation_run(
        project=project, actor=manager, model_version="tickets-v2", batch=predictions_parse(project=project, rows=v2)
    )
    return 1
