"""Load a demo project (generated support tickets in 5 classes, with model predictions spread over
the past 30 days) and demo users. Idempotent: running it again changes nothing."""

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from labeling.models import Project, Role
from labeling.services.feedback import feedback_demo_seed
from labeling.services.ingestion import items_ingest
from labeling.services.projects import LabelSpec, member_add, project_create
from labeling.services.quality import quality_demo_load

User = get_user_model()

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
    "billing": ["I was charged twice for my subscription", "Can I get a refund for last month",
                "my invoice shows the wrong VAT number", "the card payment keeps getting declined",
                "why did the price go up this month", "please cancel the annual plan and refund the rest"],
    "bug": ["the export button crashes the app", "I get error 500 when saving the report",
            "the dashboard shows yesterday's numbers", "search returns nothing for words with accents",
            "the mobile app freezes on the login screen", "totals in the CSV do not match the screen"],
    "feature": ["it would be great to have dark mode", "please add an API for bulk updates",
                "can you support exporting to Excel", "we need single sign-on with our provider",
                "could the calendar sync with Outlook", "add keyboard shortcuts for the editor"],
    "account": ["I cannot log in after resetting my password", "how do I enable two-factor authentication",
                "please merge my two accounts", "I lost access to my authenticator app",
                "my colleague needs admin rights", "delete my account and all my data"],
    "shipping": ["my parcel has not arrived after two weeks", "the tracking number does not work",
                 "the box arrived damaged", "can I change the delivery address",
                 "how do I return the wrong size", "the courier left the package at the wrong door"],
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
        rows.append({
            "external_id": f"ticket-{i + 1:05d}",
            "payload": {"text": text, "channel": rng.choice(["email", "chat", "phone"]), "customer_tier": rng.choice(["free", "pro", "enterprise"])},
            "priority": rng.choice([0, 0, 0, 1, 2]),
            "prediction": {"model_version": "tickets-v1", "label": predicted, "probabilities": probs,
                           "predicted_at": predicted_at.isoformat()},
        })
    return rows


class Command(BaseCommand):
    help = "Create the demo project, its sample data and demo users (idempotent); prints the logins."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=300)

    def handle(self, *args, items, **options):
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
                    creator=users["demo-manager"][0], name=DEMO_PROJECT, labels=LABELS,
                    description="Generated customer-support tickets; a production model routes them to teams.",
                    annotations_per_item=3, queue_order="uncertainty", accept_threshold=0.6,
                )
            for username, (user, role) in users.items():
                member_add(project=project, username=username, role=role)
        result = items_ingest(project=project, rows=demo_rows(items))
        feedback_demo_seed(project=project)  # late ground truth with realistic delays (idempotent)
        quality_demo_load(project=project)  # annotations by the demo annotators, disputed items, a quality run
        import_string("bugqueue.demo.demo_bugs_load")(project=project)  # by name: labeling never imports bugqueue
        import_string("bugqueue.demo.demo_datasets_load")(project=project)
        self.stdout.write(self.style.SUCCESS(
            f"Demo project #{project.pk} {project.name!r}: {result.created} items created, "
            f"{result.updated} updated, {result.unchanged} unchanged."
        ))
        self.stdout.write("Logins (password for all: %s):" % DEMO_PASSWORD)
        for username, role, is_staff in DEMO_USERS:
            self.stdout.write(f"  {username:<16} {role}{' (staff, admin)' if is_staff else ''}")
