"""Helpers for the queue tests: projects with items, annotators, and bulk items made in SQL."""

from django.db import connection

from labeling.models import Item, Role
from tests.factories import ItemFactory, ProjectFactory, UserFactory, add_member


def queue_project(*, items=0, overlap=3, order="fifo", lease_seconds=600, creator=None, **item_fields):
    project = ProjectFactory(creator=creator or UserFactory(), annotations_per_item=overlap)
    if order != "fifo" or lease_seconds != 600:
        type(project).objects.filter(pk=project.pk).update(queue_order=order, lease_seconds=lease_seconds)
        project.refresh_from_db()
    made = [ItemFactory(project=project, **item_fields) for _ in range(items)]
    return project, made


def annotators(project, n, role=Role.ANNOTATOR):
    return [add_member(project, UserFactory(), role) for _ in range(n)]


def bulk_items(project, n, *, prefix="b"):
    """n open items made with one INSERT ... SELECT generate_series (PostgreSQL)."""
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {Item._meta.db_table} (project_id, external_id, payload, priority, status,
                    required_annotations, annotation_count, uncertainty, first_predicted_at, reopen_rank, touchers,
                    queue_order, created_at, updated_at)
                SELECT %s, %s || g, jsonb_build_object('text', 'item ' || g), g %% 5, 'open', %s, 0,
                       (g %% 997) / 997.0, now() - (g || ' seconds')::interval, NULL, NULL, %s, now(), now()
                FROM generate_series(1, %s) g""",
            [project.pk, f"{prefix}-", project.annotations_per_item, project.queue_order, n],
        )
        cur.execute(f"ANALYZE {Item._meta.db_table}")
