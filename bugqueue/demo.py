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
from bugqueue.services.bugs import bug_resolve, bug_update
from bugqueue.services.comments import comment_add
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
    """A gate dataset built from labeled demo tickets and the demo's fixed bugs, and three model
    versions: tickets-v1, the first production model (retired); tickets-v3, which fixes the bugs,
    passes the gate with its chat slice flagged and is in production; tickets-v2, which learns the bugs
    back (the gate refuses it: regressions against tickets-v3) and runs in shadow, its live accuracy
    beside production's. Idempotent: returns 0 when already there."""
    from bugqueue.models import BugDatasetFlow, Dataset, FlowStatus
    from bugqueue.services.datasets import (
        Addition,
        bug_datasets_flow_run,
        dataset_create,
        dataset_version_create,
    )
    from bugqueue.services.evaluations import evaluation_run, predictions_parse
    from bugqueue.services.gate import model_promote
    from labeling.models import GroundTruth, Item
    from labeling.services.registry import model_ensure, model_stage_write

    if Dataset.objects.filter(project=project, name=DEMO_DATASET).exists():
        return 0
    manager = User.objects.filter(username="demo-manager").first() or project.created_by
    dataset = dataset_create(
        project=project,
        actor=manager,
        name=DEMO_DATASET,
        gate=True,
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
    # The team fixes the account-as-billing confusion and resolves its bug into the gate dataset: its
    # failures join (or wait for a reviewer where the ground truth disagrees), with 6 look-alikes mined.
    confusion = Bug.objects.filter(project=project, fingerprint=MARK + "account-as-billing").first()
    if confusion is not None and confusion.status != "resolved":
        bug_resolve(
            bug=confusion,
            actor=manager,
            resolution="fixed",
            note="Added 2FA-card tickets to the training set.",
            datasets=[dataset.pk],
            mine_similar=6,
        )
    for flow in BugDatasetFlow.objects.filter(bug__project=project).exclude(status=FlowStatus.DONE):
        bug_datasets_flow_run(flow_id=flow.pk)  # the demo's hand-offs, run now rather than by a worker
    rows = list(dataset.members.filter(removed_in__isnull=True).values_list("item__external_id", "label", "item_id"))
    production = dict(
        Prediction.objects.filter(item_id__in=[r[2] for r in rows], model_version="tickets-v1").values_list(
            "item_id", "label"
        )
    )
    keys = list(project.labels.values_list("key", flat=True))
    truth = dict(GroundTruth.objects.filter(item__project=project).values_list("item_id", "label"))
    # tickets-v1 serves the demo's predictions (wrong on the bugs' tickets): the first production model.
    v1 = [{"external_id": e, "label": production.get(i, lab)} for e, lab, i in rows]
    evaluation_run(
        project=project, actor=manager, model_version="tickets-v1", batch=predictions_parse(project=project, rows=v1)
    )
    model_stage_write(
        model=model_ensure(project=project, version="tickets-v1", actor=manager), to_stage="production", actor=manager
    )
    # tickets-v3 fixes the bugs but misroutes a few chat tickets no bug added: it passes the gate with
    # its chat slice flagged, and is promoted to production (v1 retires); it serves live traffic.
    channel = dict(Item.objects.filter(pk__in=[r[2] for r in rows]).values_list("pk", "payload__channel"))
    bug_items = set(dataset.members.filter(bug__isnull=False).values_list("item_id", flat=True))
    wrong = {r[2] for r in rows if channel.get(r[2]) == "chat" and r[2] not in bug_items}
    wrong = set(sorted(wrong)[:10])
    v3 = [{"external_id": e, "label": _next(keys, lab) if i in wrong else lab} for e, lab, i in rows]
    evaluation_run(
        project=project, actor=manager, model_version="tickets-v3", batch=predictions_parse(project=project, rows=v3)
    )
    model_promote(
        project=project, actor=manager, version="tickets-v3", stage="production", note="Fixes the demo's routing bugs"
    )
    _live_predictions(
        project,
        version="tickets-v3",
        label_for=lambda n, item_id, prod: (
            _next(keys, truth.get(item_id, prod)) if n % 9 == 4 else truth.get(item_id, prod)
        ),
    )
    # tickets-v2, retrained on old data, learns the bugs back: compared with tickets-v3 on the same
    # dataset version it regresses on the fixed bugs' tickets, so the gate refuses it; it runs in shadow.
    evaluation_run(
        project=project, actor=manager, model_version="tickets-v2", batch=predictions_parse(project=project, rows=v1)
    )
    model_promote(project=project, actor=manager, version="tickets-v2", stage="shadow", note="Shadow traffic only")
    _live_predictions(project, version="tickets-v2", label_for=lambda n, item_id, prod: prod)
    return 1


def _next(keys, label):
    return keys[(keys.index(label) + 1) % len(keys)]


def _live_predictions(project, *, version, label_for):
    """`version`'s live predictions on every demo ticket that tickets-v1 predicted, at the same times:
    label_for(n, item_id, v1's label) gives each label (a fixed pattern: the demo is the same every time)."""
    from labeling.models import Item, Prediction
    from labeling.services.ingestion import items_ingest

    production = {
        p["item_id"]: p
        for p in Prediction.objects.filter(item__project=project, model_version="tickets-v1").values(
            "item_id", "label", "predicted_at"
        )
    }
    keys = list(project.labels.values_list("key", flat=True))
    rows = []
    for n, (item_id, ext, payload) in enumerate(
        Item.objects.filter(project=project).order_by("pk").values_list("pk", "external_id", "payload")
    ):
        prod = production.get(item_id)
        if prod is None:
            continue
        label = label_for(n, item_id, prod["label"])
        probs = {k: (0.76 if k == label else round(0.24 / (len(keys) - 1), 4)) for k in keys}
        probs[label] = round(1 - sum(v for k, v in probs.items() if k != label), 4)
        rows.append(
            {
                "external_id": ext,
                "payload": payload,
                "prediction": {
                    "model_version": version,
                    "label": label,
                    "probabilities": probs,
                    "predicted_at": prod["predicted_at"].isoformat(),
                },
            }
        )
    for start in range(0, len(rows), 5000):
        items_ingest(project=project, rows=rows[start : start + 5000])
