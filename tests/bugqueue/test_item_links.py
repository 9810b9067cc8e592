"""The bug queue's part of labeling's item page (bugqueue/templatetags/item_links.py): the bugs an
item is a failure of and the datasets it is in; hidden from an annotator who may still label it."""

import pytest

from bugqueue.services.datasets import dataset_create, dataset_version_curate
from labeling.models import Role
from labeling.services.ground_truth import Decision, ground_truth_set_many
from tests.bugqueue.factories import ingest_items, make_bug
from tests.labeling.factories import ProjectFactory, add_member

pytestmark = pytest.mark.django_db


def test_item_page_lists_bugs_and_datasets(client, user):
    project = ProjectFactory(creator=user, annotations_per_item=1)
    annotator = add_member(project, role=Role.ANNOTATOR)
    item, other = ingest_items(project, 2)
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(item.pk, "neg", "imported")])
    bug = make_bug(
        project,
        title="Refunds predicted positive",
        kind="failed_prediction",
        failures=[{"external_id": item.external_id, "predicted_label": "pos", "expected_label": "neg"}],
    )
    dataset = dataset_create(project=project, actor=user, name="Refund slice")
    dataset_version_curate(dataset=dataset, actor=user, add_external_ids=[item.external_id])

    client.force_login(user)
    html = client.get(f"/projects/{project.pk}/items/{item.pk}").content.decode()
    section = html.split('id="it-bugs"')[1].split("</section>")[0]
    assert f"/bugs/{bug.pk}" in section and "Refunds predicted positive" in section
    assert "Refund slice" in section
    plain = client.get(f"/projects/{project.pk}/items/{other.pk}").content.decode()
    assert "In no bug." in plain and "In no dataset." in plain

    client.force_login(annotator)
    html = client.get(f"/projects/{project.pk}/items/{item.pk}").content.decode()
    section = html.split('id="it-bugs"')[1].split("</section>")[0]
    assert "Refunds predicted positive" not in section and "Refund slice" not in section and "Hidden." in section
