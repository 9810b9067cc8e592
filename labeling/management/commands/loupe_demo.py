"""Load a demo project (generated support tickets in 5 classes, with model predictions spread over
the past 30 days) and demo users. Idempotent: running it again changes nothing."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import import_string

from labeling.demo import DEMO_PASSWORD, DEMO_PROJECT, DEMO_USERS, LABELS, demo_rows, quality_demo_load
from labeling.models import Project
from labeling.services.feedback import feedback_demo_seed
from labeling.services.ingestion import items_ingest
from labeling.services.projects import member_add, project_create

User = get_user_model()


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
