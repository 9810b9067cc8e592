"""Sending items to review from the item explorer goes through labeling.services.quality.review, as a
quality run's doubted labels do: each move leaves a ReviewSend (from which status, by whom, why), the
item page shows it, and the review queue serves the item even after a quality run."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from labeling.models import (
    Annotation,
    Item,
    ItemStatus,
    QualityItemResult,
    QualityRun,
    QualityRunStatus,
    ReviewSend,
)
from labeling.services.quality.review import items_send_to_review
from labeling.services.resolution import item_resolve, review_next
from tests.conftest import client_for
from tests.labeling.api.test_items_explorer import world  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def _send(w, ids, **extra):
    return client_for(w["manager"]).post(
        f"/api/projects/{w['project'].pk}/items/bulk",
        {"action": "send_to_review", "ids": ids, **extra},
        format="json",
    )


def test_bulk_send_records_who_and_why_and_the_item_page_shows_it(world):  # noqa: F811
    its = world["items"]
    ids = [its[k].pk for k in ("refund", "shipping", "coupon", "late")]
    resp = _send(world, ids, reason="Customer says the refund label is wrong")
    assert resp.json() == {"action": "send_to_review", "matched": 4, "changed": 1, "skipped": 3}
    send = ReviewSend.objects.get()
    assert (send.item_id, send.from_status, send.actor, send.source) == (
        its["refund"].pk,
        ItemStatus.RESOLVED,
        world["manager"],
        "explorer",
    )
    assert send.reason == "Customer says the refund label is wrong"
    assert Item.objects.get(pk=its["refund"].pk).status == ItemStatus.DISPUTED

    web = Client()
    web.force_login(world["reviewer"])
    html = web.get(f"/projects/{world['project'].pk}/items/{its['refund'].pk}").content.decode()
    section = html.split('id="it-review-sends"')[1].split("</section>")[0]
    assert world["manager"].username in section and "Customer says the refund label is wrong" in section
    assert "resolved" in section and "explorer" in section
    # An annotator still labeling blind does not see it (the reason may name labels).
    Annotation.objects.filter(item=its["refund"]).delete()
    web.force_login(world["other"])
    html = web.get(f"/projects/{world['project'].pk}/items/{its['refund'].pk}").content.decode()
    assert 'id="it-review-sends"' not in html


def test_default_reason_and_no_record_when_nothing_moves(world):  # noqa: F811
    its = world["items"]
    _send(world, [its["refund"].pk])
    assert ReviewSend.objects.get().reason == "Sent to review from the item explorer."
    _send(world, [its["refund"].pk, its["coupon"].pk])  # already disputed / never annotated
    assert ReviewSend.objects.count() == 1
    assert (
        items_send_to_review(project=world["project"], item_ids=[its["late"].pk], actor=None, source="explorer") == []
    )


def test_an_item_sent_after_a_quality_run_is_served_to_reviewers(world):  # noqa: F811
    """A run's review queue walks its own results, then items annotated or ingested since it: an older
    resolved item sent to review later is found through its ReviewSend."""
    its, project = world["items"], world["project"]
    run = QualityRun.objects.create(
        project=project,
        status=QualityRunStatus.DONE,
        snapshot_at=timezone.now() - timedelta(minutes=5),
        snapshot_max_annotation_id=Annotation.objects.order_by("-id").values_list("id", flat=True).first(),
    )
    QualityItemResult.objects.create(
        run=run, item=its["email"], consensus_label="neu", quality=1, agreement=1, num_annotations=1, outcome="kept"
    )
    _send(world, [its["refund"].pk])
    served = []
    while (lease := review_next(project=project, reviewer=world["reviewer"])) is not None:
        served.append(lease.item_id)
        item_resolve(item=lease.item, reviewer=world["reviewer"], label="pos")
    assert its["refund"].pk in served
    assert Item.objects.get(pk=its["refund"].pk).status == ItemStatus.RESOLVED
