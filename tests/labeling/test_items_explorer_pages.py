"""The item explorer page and the item page, rendered: highlights, columns, sorting links, filters,
error and empty states, and blind labeling for annotators."""

import pytest

from labeling.models import Item, Role
from labeling.services.annotations import annotation_submit
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.ingestion import items_ingest
from labeling.services.queue.claim import assignment_claim_next
from tests.labeling.factories import ProjectFactory, add_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(user):
    project = ProjectFactory(creator=user, annotations_per_item=1)
    annotator = add_member(project, role=Role.ANNOTATOR)
    rows = [
        {
            "external_id": f"t-{i}",
            "payload": {"text": text},
            "prediction": {
                "model_version": "v1",
                "label": "neg",
                "probabilities": {"pos": 0.05, "neg": 0.9, "neu": 0.05},
            },
        }
        for i, text in enumerate(["My <b>refund</b> never came", "Screen broken on arrival", "Love it"])
    ]
    items_ingest(project=project, rows=rows)
    items = list(Item.objects.filter(project=project).order_by("id"))
    claim = assignment_claim_next(project=project, annotator=annotator)
    annotation_submit(assignment_id=claim.assignment_id, annotator=annotator, label="neu")  # t-0, resolved
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(items[1].pk, "pos", "imported")])
    return {"project": project, "manager": user, "annotator": annotator, "items": items}


def _page(client, who, world, query=""):
    client.force_login(world[who])
    resp = client.get(f"/projects/{world['project'].pk}/items{query}")
    assert resp.status_code == 200
    return resp.content.decode()


def test_search_highlights_and_escapes(client, world):
    html = _page(client, "manager", world, "?q=refund")
    assert "t-0" in html and "t-1" not in html
    assert "&lt;b&gt;<mark>refund</mark>&lt;/b&gt;" in html  # the payload is escaped, the match marked
    assert 'id="ix-bulk"' in html  # managers get the bulk bar


def test_columns_and_sort_links(client, world):
    html = _page(client, "manager", world, "?ordering=-confidence")
    assert html.count('class="ix-row"') == 3
    assert "0.90" in html and "Confidence ▼" in html
    assert "ordering=confidence" in html  # clicking again sorts ascending


def test_filters_and_states(client, world):
    html = _page(client, "manager", world, "?status=resolved&label=pos")
    assert "t-1" in html and "t-0" not in html
    html = _page(client, "manager", world, "?q=nothingmatches")
    assert 'id="ix-empty"' in html and "No item matches" in html
    html = _page(client, "manager", world, "?confidence_min=7")
    assert 'id="ix-error"' in html and "confidence_min" in html
    html = _page(client, "manager", world, "?colour=red")
    assert "Unknown filter: colour" in html


def test_annotator_sees_hidden_labels_as_hidden(client, world):
    html = _page(client, "annotator", world)
    assert 'id="ix-bulk"' not in html
    rows = {r.split('data-id="')[1].split('"')[0]: r for r in html.split('<tr class="ix-row"')[1:]}
    mine, other = world["items"][0], world["items"][1]
    assert "neu" in rows[str(mine.pk)]  # closed for them: their label is the ground truth
    hidden_row = rows[str(other.pk)]
    assert '<td data-col="label" data-label="Label"><span class="muted"' in hidden_row
    assert '<td data-col="predicted" data-label="Predicted"><span class="muted">hidden' in hidden_row
    assert ">pos<" not in hidden_row and ">neg<" not in hidden_row and "0.90" not in hidden_row


def test_item_page(client, world):
    client.force_login(world["manager"])
    item = world["items"][0]
    html = client.get(f"/projects/{world['project'].pk}/items/{item.pk}?back=%3Fq%3Drefund").content.decode()
    assert "t-0" in html and "My &lt;b&gt;refund&lt;/b&gt; never came" in html
    assert world["annotator"].username in html and "neu" in html  # annotation and ground truth
    assert 'id="it-history"' in html and 'id="it-bugs"' in html
    assert f'<div id="item-comments" data-item="{item.pk}"></div>' in html
    assert f"/projects/{world['project'].pk}/items?q=refund" in html  # back to the list searched
    evil = client.get(f"/projects/{world['project'].pk}/items/{item.pk}?back=https://evil.example").content.decode()
    assert "evil.example" not in evil


def test_item_page_blind_for_annotators(client, world):
    client.force_login(world["annotator"])
    other = world["items"][1]
    html = client.get(f"/projects/{world['project'].pk}/items/{other.pk}").content.decode()
    assert 'id="it-blind"' in html
    assert "0.90" not in html and ">pos<" not in html and "imported" not in html


def test_item_of_another_project_is_404(client, world, user):
    elsewhere = ProjectFactory(creator=user)
    items_ingest(project=elsewhere, rows=[{"external_id": "x", "payload": {"text": "x"}}])
    foreign = Item.objects.get(project=elsewhere)
    client.force_login(world["manager"])
    assert client.get(f"/projects/{world['project'].pk}/items/{foreign.pk}").status_code == 404
