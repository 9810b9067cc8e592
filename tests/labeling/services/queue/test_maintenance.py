"""Re-keying open items and reconciling stored counters (labeling.services.queue.maintenance), on
PostgreSQL."""

import pytest
from django.utils import timezone

from labeling.models import Item, ItemStatus
from labeling.services.queue import claim as claim_service
from labeling.services.queue.claim import eligible_items
from labeling.services.queue.maintenance import counters_reconcile
from tests.labeling.factories import ItemFactory, annotators, queue_project
from tests.labeling.services.queue.test_claim import claim, submit


@pytest.mark.django_db
def test_changing_the_projects_order_reorders_its_open_items(
    postgres, eager_celery, django_capture_on_commit_callbacks
):
    """Open items carry their project's ordering (the queue indexes order by it): a change of the
    project's ordering re-keys them (a task, after commit), and the claim follows the new order."""
    from labeling.services.projects import project_update

    project, _ = queue_project(order="fifo", overlap=3)
    old_low, new_high = ItemFactory(project=project, priority=0), ItemFactory(project=project, priority=5)
    done = ItemFactory(project=project, priority=9, status=ItemStatus.RESOLVED)
    (me,) = annotators(project, 1)

    def head():
        row = claim_service._find(project=project, me=me.pk, now=timezone.now(), lock=False)
        reference = (
            eligible_items(project=project, annotator=me, now=timezone.now()).values_list("pk", flat=True).first()
        )
        assert row["id"] == reference
        return row["id"]

    assert head() == old_low.pk
    with django_capture_on_commit_callbacks(execute=True):
        project = project_update(project=project, actor=None, queue_order="priority")
    assert head() == new_high.pk
    orders = dict(Item.objects.filter(project=project).values_list("pk", "queue_order"))
    assert orders == {old_low.pk: "priority", new_high.pk: "priority", done.pk: "fifo"}  # closed items: at reopen


@pytest.mark.django_db
def test_reconcile_fixes_drifted_counters_and_logs(postgres, caplog):
    project, items = queue_project(items=3, overlap=3)
    a, b = annotators(project, 2)
    submit(claim(project, a), a)
    submit(claim(project, b), b)
    Item.objects.filter(pk=items[0].pk).update(annotation_count=7, touchers=None)
    from labeling.models import AnnotatorProgress

    AnnotatorProgress.objects.filter(annotator=a).update(submitted=40)
    Item.objects.filter(pk=items[2].pk).update(queue_order="priority")  # not the project's (fifo)
    with caplog.at_level("WARNING"):
        result = counters_reconcile(project_id=project.pk)
    assert (result.counts_fixed, result.touchers_fixed, result.progress_fixed, result.order_fixed) == (1, 1, 1, 1)
    assert Item.objects.get(pk=items[2].pk).queue_order == "fifo"
    item = Item.objects.get(pk=items[0].pk)
    assert item.annotation_count == 2 and item.touchers == sorted([a.pk, b.pk])
    assert "drift" in caplog.text or "->" in caplog.text
    assert counters_reconcile(project_id=project.pk).counts_fixed == 0
