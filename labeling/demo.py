"""Demo data for `manage.py loupe_demo`: the demo project's labels and users, generated support
tickets with production predictions, and the demo annotators' labels scored by one quality run.
Not used by any service; bugqueue.demo holds the bug queue's part."""

from __future__ import annotations

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from common.errors import Conflict
from labeling.models import (
    Annotation,
    GroundTruthMethod,
    Item,
    ItemStatus,
    LabelClass,
    Project,
    QualityRun,
    QualityTrigger,
    Role,
)
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.projects import LabelSpec, member_add, project_create
from labeling.services.quality.runs import quality_run_execute, quality_run_request

DEMO_PROJECT = "Support tickets (demo)"
DEMO_PASSWORD = "loupe-demo-2026"
DEMO_USERS = [
    ("demo-manager", Role.MANAGER, True),
    ("demo-reviewer", Role.REVIEWER, False),
    ("demo-annotator", Role.ANNOTATOR, False),
    ("demo-annotator2", Role.ANNOTATOR, False),
    ("demo-annotator3", Role.ANNOTATOR, False),
]
LABELS = [
    LabelSpec("billing", "Billing", "Charges, invoices, refunds, payment methods, pricing questions.", "1"),
    LabelSpec("bug", "Bug report", "The product does something wrong: errors, crashes, wrong results.", "2"),
    LabelSpec("feature", "Feature request", "Asks for something the product does not do yet.", "3"),
    LabelSpec("account", "Account access", "Login, password, 2FA, permissions, deleting or merging accounts.", "4"),
    LabelSpec("shipping", "Shipping", "Delivery of physical goods: tracking, delays, damaged parcels, returns.", "5"),
]
PHRASES = {
    "billing": [
        "I was charged twice for my subscription",
        "Can I get a refund for last month",
        "my invoice shows the wrong VAT number",
        "the card payment keeps getting declined",
        "why did the price go up this month",
        "please cancel the annual plan and refund the rest",
    ],
    "bug": [
        "the export button crashes the app",
        "I get error 500 when saving the report",
        "the dashboard shows yesterday's numbers",
        "search returns nothing for words with accents",
        "the mobile app freezes on the login screen",
        "totals in the CSV do not match the screen",
    ],
    "feature": [
        "it would be great to have dark mode",
        "please add an API for bulk updates",
        "can you support exporting to Excel",
        "we need single sign-on with our provider",
        "could the calendar sync with Outlook",
        "add keyboard shortcuts for the editor",
    ],
    "account": [
        "I cannot log in after resetting my password",
        "how do I enable two-factor authentication",
        "please merge my two accounts",
        "I lost access to my authenticator app",
        "my colleague needs admin rights",
        "delete my account and all my data",
    ],
    "shipping": [
        "my parcel has not arrived after two weeks",
        "the tracking number does not work",
        "the box arrived damaged",
        "can I change the delivery address",
        "how do I return the wrong size",
        "the courier left the package at the wrong door",
    ],
}
OPENERS = ["Hi,", "Hello team,", "Urgent:", "", "Good morning,", "Hey,"]
CLOSERS = ["Thanks.", "Regards, Sam", "Please help!", "", "Cheers", "Thank you in advance."]
CONFUSABLE = {"billing": "account", "bug": "feature", "feature": "bug", "account": "billing", "shipping": "billing"}


def demo_rows(n: int, *, seed: int = 7):
    rng = random.Random(seed)
    now = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)  # stable within a day
    keys = [lab.key for lab in LABELS]
    rows = []
    for i in range(n):
        true = rng.choice(keys)
        text = " ".join(t for t in (rng.choice(OPENERS), rng.choice(PHRASES[true]) + ".", rng.choice(CLOSERS)) if t)
        # The production model is right ~80% of the time, confusing similar classes when wrong.
        predicted = true if rng.random() < 0.8 else (CONFUSABLE[true] if rng.random() < 0.7 else rng.choice(keys))
        conf = rng.uniform(0.45, 0.97)
        rest = [k for k in keys if k != predicted]
        shares = [rng.random() for _ in rest]
        total = sum(shares)
        probs = {predicted: round(conf, 4)}
        for k, s in zip(rest, shares):
            probs[k] = round((1 - conf) * s / total, 4)
        probs[predicted] = round(1 - sum(v for k, v in probs.items() if k != predicted), 4)
        predicted_at = now - timedelta(seconds=rng.randint(0, 30 * 86400))
        rows.append(
            {
                "external_id": f"ticket-{i + 1:05d}",
                "payload": {
                    "text": text,
                    "channel": rng.choice(["email", "chat", "phone"]),
                    "customer_tier": rng.choice(["free", "pro", "enterprise"]),
                },
                "priority": rng.choice([0, 0, 0, 1, 2]),
                "prediction": {
                    "model_version": "tickets-v1",
                    "label": predicted,
                    "probabilities": probs,
                    "predicted_at": predicted_at.isoformat(),
                },
            }
        )
    return rows


def demo_project_load() -> Project:
    """The demo users (password DEMO_PASSWORD; the manager is staff) and the demo project with every
    one of them a member. Idempotent."""
    User = get_user_model()
    with transaction.atomic():
        users = {}
        for username, role, is_staff in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"is_staff": is_staff})
            if created:
                user.set_password(DEMO_PASSWORD)
                user.is_superuser = is_staff
                user.save()
            users[username] = (user, role)
        project = Project.objects.filter(name=DEMO_PROJECT).order_by("id").first()
        if project is None:
            project = project_create(
                creator=users["demo-manager"][0],
                name=DEMO_PROJECT,
                labels=LABELS,
                description="Generated customer-support tickets; a production model routes them to teams.",
                annotations_per_item=3,
                queue_order="uncertainty",
                accept_threshold=0.6,
                slice_fields=["channel", "customer_tier"],
            )
        for username, (_user, role) in users.items():
            member_add(project=project, username=username, role=role)
    return project


DEMO_ANNOTATORS = (("demo-annotator", 0.92), ("demo-annotator2", 0.8), ("demo-annotator3", 0.62))
DEMO_ITEMS = 40


def quality_demo_load(*, project: Project) -> QualityRun | None:
    """Demo data for review and quality: the three demo annotators label the project's last 40 items
    (some agree, some not; a few are three-way splits), then one quality run scores them, which
    accepts the clear consensus and leaves the doubtful items in the review queue. Idempotent:
    does nothing once those items have annotations."""
    users = {u.username: u for u in get_user_model().objects.filter(username__in=[name for name, _ in DEMO_ANNOTATORS])}
    if len(users) < len(DEMO_ANNOTATORS):
        return None
    items = list(Item.objects.filter(project=project).order_by("-id")[:DEMO_ITEMS])
    if not items or Annotation.objects.filter(item__in=items).exists():
        return None
    keys = list(LabelClass.objects.filter(project=project).order_by("position", "id").values_list("key", flat=True))
    rng = random.Random(11)
    rows, decisions, disputed = [], [], []
    with transaction.atomic():
        for n, item in enumerate(sorted(items, key=lambda it: it.pk)):
            true = next((k for k, phrases in PHRASES.items() if any(p in item.text for p in phrases)), rng.choice(keys))
            if n % 9 == 4:  # a genuinely unclear ticket: everyone says something else
                chosen = rng.sample(keys, len(DEMO_ANNOTATORS))
            else:
                chosen = [
                    true if rng.random() < acc else rng.choice([k for k in keys if k != true])
                    for _, acc in DEMO_ANNOTATORS
                ]
            for (name, _), label in zip(DEMO_ANNOTATORS, chosen):
                rows.append(
                    Annotation(
                        project_id=item.project_id,
                        item=item,
                        annotator=users[name],
                        label=label,
                        seconds_spent=round(rng.uniform(3, 40), 1),
                    )
                )
            if len(set(chosen)) == 1:
                decisions.append(
                    Decision(
                        item.pk,
                        chosen[0],
                        GroundTruthMethod.UNANIMOUS,
                        annotators=tuple(users[name].pk for name, _ in DEMO_ANNOTATORS),
                    )
                )
            else:
                disputed.append(item.pk)
        Annotation.objects.bulk_create(rows)
        Item.objects.filter(pk__in=[it.pk for it in items]).update(annotation_count=len(DEMO_ANNOTATORS))
        Item.objects.filter(pk__in=disputed).update(status=ItemStatus.DISPUTED)
        if decisions:
            ground_truth_set_many(project_id=project.pk, decisions=decisions)
    try:
        run = quality_run_request(project_id=project.pk, trigger=QualityTrigger.MANUAL)
    except Conflict:
        return None
    quality_run_execute(run_id=run.pk)  # (already done if tasks run in-process: then this is a no-op)
    return QualityRun.objects.get(pk=run.pk)
