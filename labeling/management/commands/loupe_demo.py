"""Load a demo project (generated support tickets in 5 classes, with model predictions spread over
the past 30 days) and demo users. Idempotent: running it again changes nothing."""

from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from labeling.demo import DEMO_PASSWORD, DEMO_USERS, demo_project_load, demo_rows, quality_demo_load
from labeling.services.feedback import feedback_demo_seed
from labeling.services.ingestion import items_ingest


class Command(BaseCommand):
    help = "Create the demo project, its sample data and demo users (idempotent); prints the logins."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=300)

    def handle(self, *args, items, **options):
        project = demo_project_load()
        result = items_ingest(project=project, rows=demo_rows(items))
        feedback_demo_seed(project=project)  # late ground truth with realistic delays (idempotent)
        quality_demo_load(project=project)  # annotations by the demo annotators, disputed items, a quality run
        import_string("bugqueue.demo.demo_bugs_load")(project=project)  # by name: labeling never imports bugqueue
        import_string("bugqueue.demo.demo_datasets_load")(project=project)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo project #{project.pk} {project.name!r}: {result.created} items created, "
                f"{result.updated} updated, {result.unchanged} unchanged."
            )
        )
        self.stdout.write("Logins (password for all: %s):" % DEMO_PASSWORD)
        for username, role, is_staff in DEMO_USERS:
            self.stdout.write(f"  {username:<16} {role}{' (staff, admin)' if is_staff else ''}")
