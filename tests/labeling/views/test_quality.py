"""Web views of review and quality without JavaScript (plain form posts) and their permissions."""

from unittest import mock

import numpy as np
import pytest
from django.test import Client

from labeling.models import GroundTruth, QualityRun, QualitySettings, Role
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute, quality_run_request
from tests.labeling.factories import (
    PASSWORD,
    UserFactory,
    add_member,
    annotators,
    crowd_project,
    load_crowd,
    simulate_crowd,
)


def browser_for(user):
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


@pytest.fixture
def scored(db):
    project, manager = crowd_project(k=3, accept_threshold=0.95, max_annotations_per_item=3)
    users = annotators(project, 5)
    load_crowd(
        project, users, simulate_crowd(n_items=30, accuracies=np.linspace(0.6, 0.9, 5), n_classes=3, per_item=3, seed=6)
    )
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk)
    quality_run_execute(run_id=run.pk)
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    return project, manager, reviewer, users


def test_review_without_javascript(scored):
    project, manager, reviewer, users = scored
    c = browser_for(reviewer)
    page = c.get(f"/projects/{project.pk}/review")
    assert page.status_code == 200 and b"Start reviewing" in page.content and b"review-item" not in page.content
    nxt = c.post(f"/projects/{project.pk}/review/next")
    assert nxt.status_code == 200 and b'id="review-item"' in nxt.content and b"<html" in nxt.content.lower()
    item_id = int(nxt.content.split(b'data-item-id="')[1].split(b'"')[0])
    bad = c.post(f"/projects/{project.pk}/review/items/{item_id}/resolve", {"label": "nope"})
    assert bad.status_code == 200 and b"not a label of this project" in bad.content
    assert not GroundTruth.objects.filter(item_id=item_id).exists()
    ok = c.post(
        f"/projects/{project.pk}/review/items/{item_id}/resolve", {"label": "c1", "note": "n"}, HTTP_HX_REQUEST="true"
    )
    assert ok.status_code == 200 and b"resolved as c1" in ok.content and b"<html" not in ok.content.lower()
    assert GroundTruth.objects.get(item_id=item_id).method == "adjudicated"
    nxt_id = int(ok.content.split(b'data-item-id="')[1].split(b'"')[0])
    skipped = c.post(f"/projects/{project.pk}/review/items/{nxt_id}/skip", HTTP_HX_REQUEST="true")
    assert b"Skipped" in skipped.content


def test_review_and_quality_pages_check_roles(scored):
    project, manager, reviewer, users = scored
    annotator = browser_for(users[0])
    assert annotator.get(f"/projects/{project.pk}/review").status_code == 403
    assert annotator.get(f"/projects/{project.pk}/quality").status_code == 403
    assert annotator.post(f"/projects/{project.pk}/review/next").status_code == 403
    stranger = browser_for(UserFactory())
    assert stranger.get(f"/projects/{project.pk}/quality").status_code == 404
    assert Client().get(f"/projects/{project.pk}/quality").status_code == 302  # to the login page
    assert browser_for(reviewer).get(f"/projects/{project.pk}/quality").status_code == 200
    assert browser_for(reviewer).post(f"/projects/{project.pk}/quality/runs").status_code == 403
    assert browser_for(reviewer).get(f"/projects/{project.pk}/review/next").status_code == 405  # never leases on GET
    for panel in ("agreement", "annotators"):
        assert annotator.get(f"/projects/{project.pk}/quality/{panel}").status_code == 403
        assert stranger.get(f"/projects/{project.pk}/quality/{panel}").status_code == 404
        assert browser_for(reviewer).get(f"/projects/{project.pk}/quality/{panel}").status_code == 200


def test_quality_page_loads_its_slow_panels_after_it_or_with_it_without_javascript(scored):
    """The agreement (with the confusion heatmap) and the annotator table read every annotation:
    the page names where htmx fetches them; ?panels=inline (the <noscript> link) computes them with it."""
    project, manager, reviewer, users = scored
    c = browser_for(reviewer)
    with (
        mock.patch("labeling.selectors.quality.project_agreement") as agreement,
        mock.patch("labeling.selectors.quality.annotator_table") as table,
    ):
        shell = c.get(f"/projects/{project.pk}/quality")
    assert shell.status_code == 200 and not agreement.called and not table.called
    html = shell.content.decode()
    assert (
        f'hx-get="/projects/{project.pk}/quality/agreement"' in html
        and f'hx-get="/projects/{project.pk}/quality/annotators"' in html
    )
    assert 'id="alpha"' not in html and 'id="annotator-table"' not in html and "?panels=inline" in html

    panel = c.get(f"/projects/{project.pk}/quality/agreement", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="alpha"' in panel and "<html" not in panel.lower()
    # Each figure says what it is computed over, beside the number.
    assert "over the first 3 labels of 30 items" in panel and "every label of every item with at least 2" in panel
    assert "Fleiss&#x27; kappa (statsmodels) over the first 3 labels, in the order they were given" in panel
    assert 'id="confusion" hx-swap-oob="true"' in panel and 'id="confusion-heatmap"' in panel
    table_html = c.get(f"/projects/{project.pk}/quality/annotators").content.decode()
    assert table_html.count("<tr>") == 1 + 5  # the header and the five annotators

    inline = c.get(f"/projects/{project.pk}/quality?panels=inline").content.decode()
    assert 'id="alpha"' in inline and 'id="annotator-table"' in inline and 'id="confusion-heatmap"' in inline
    assert "hx-swap-oob" not in inline and "hx-get" not in inline


def test_manager_runs_now_and_changes_the_trigger(scored):
    project, manager, reviewer, users = scored
    c = browser_for(manager)
    with mock.patch.object(quality_service, "_enqueue"):
        res = c.post(f"/projects/{project.pk}/quality/runs", follow=True)
        assert b"queued" in res.content
        again = c.post(f"/projects/{project.pk}/quality/runs", follow=True)
        assert b"already queued" in again.content
    assert QualityRun.objects.filter(project=project).count() == 2
    c.post(f"/projects/{project.pk}/quality/settings", {"auto_run_after_disputed": "7"})
    assert QualitySettings.objects.get(project=project).auto_run_after_disputed == 7
    res = c.post(f"/projects/{project.pk}/quality/settings", {"auto_run_after_disputed": "many"}, follow=True)
    assert b"whole number" in res.content
    assert QualitySettings.objects.get(project=project).auto_run_after_disputed == 7


def test_review_pane_shows_both_labels_of_a_conflict(project, user):
    """A label claimed by a bug's failure that disagrees with the ground truth: the reviewer sees both,
    with a link to the bug, and decides."""
    from labeling.services.conflicts import ClaimedLabel, items_conflict_raise
    from labeling.services.ground_truth import ground_truth_set
    from tests.labeling.factories import ItemFactory

    item = ItemFactory(project=project)
    ground_truth_set(item=item, label="neg", method="imported", source="crm")
    items_conflict_raise(project_id=project.pk, claims=[ClaimedLabel(item.pk, "pos")], source="bug:21")
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    nxt = browser_for(reviewer).post(f"/projects/{project.pk}/review/next")
    assert nxt.status_code == 200 and b'id="review-conflict"' in nxt.content
    pane = nxt.content.decode()
    conflict = pane.split('id="review-conflict"')[1].split("</div>")[0]
    assert "<code>neg</code>" in conflict and "<code>pos</code>" in conflict and 'href="/bugs/21"' in conflict


@pytest.mark.django_db
def test_accept_rule_card_and_settings_form_without_javascript():
    project, manager = crowd_project(k=3, accept_mode="calibrated", max_annotations_per_item=3)
    users = annotators(project, 5)
    load_crowd(
        project, users, simulate_crowd(n_items=30, accuracies=np.linspace(0.6, 0.9, 5), n_classes=3, per_item=3, seed=6)
    )
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk)
    quality_run_execute(run_id=run.pk)
    c = browser_for(manager)
    page = c.get(f"/projects/{project.pk}/quality").content.decode()
    assert 'id="accept-rule"' in page and "Default rule until 50 decisions: 0 so far." in page
    url = f"/projects/{project.pk}/quality/settings"
    bad = c.post(
        url, {"auto_run_after_disputed": "7", "accept_mode": "calibrated", "max_accept_error": "0.9"}, follow=True
    )
    assert b"max_accept_error" in bad.content
    project.refresh_from_db()
    assert project.max_accept_error == 0.02
    assert QualitySettings.objects.get(project=project).auto_run_after_disputed == 25  # nothing changed
    c.post(
        url,
        {"auto_run_after_disputed": "7", "accept_mode": "raw_score", "max_accept_error": "0.05", "audit_rate": "0.1"},
    )
    project.refresh_from_db()
    assert (project.accept_mode, project.max_accept_error, project.audit_rate) == ("raw_score", 0.05, 0.1)
    page = c.get(f"/projects/{project.pk}/quality").content.decode()
    assert "Raw score: a consensus is accepted when its CROWDLAB quality is" in page


def _button(html: str, value: str) -> str:
    """The opening tag of the Decide form's button for one label."""
    start = html.index(f'name="label" value="{value}"')
    return html[html.rindex("<button", 0, start) : html.index(">", start) + 1]


@pytest.mark.django_db
def test_review_pane_explains_a_consensus_nobody_chose_and_highlights_the_majority():
    from tests.labeling.review_data import review_project

    project, _, reviewer, items = review_project()
    c = browser_for(reviewer)
    first = c.post(f"/projects/{project.pk}/review/next").content.decode()
    assert 'id="review-external-id">ticket-00264<' in first
    assert (
        "The model and the annotators&#x27; track records point to Feature (quality 0.12), a label no annotator chose; "
        "the majority said Bug (2 of 3)." in first
    )
    assert 'id="review-majority"><code>bug</code> Bug <span class="muted">2 of 3 votes' in first
    assert 'class="suggested"' in _button(first, "bug")
    assert 'class="suggested"' not in _button(first, "feature") and 'class="suggested"' not in _button(first, "billing")

    second = c.post(
        f"/projects/{project.pk}/review/items/{items['ticket-00264'].pk}/resolve", {"label": "bug"}
    ).content.decode()
    assert 'id="review-external-id">ticket-unanimous<' in second
    assert "All 3 annotators said Bug; cleanlab&#x27;s consensus is Feature (quality 0.21)." in second
    assert 'class="suggested"' in _button(second, "bug") and 'class="suggested"' not in _button(second, "feature")
    assert GroundTruth.objects.get(item=items["ticket-00264"]).method == "adjudicated"

    third = c.post(
        f"/projects/{project.pk}/review/items/{items['ticket-unanimous'].pk}/resolve", {"label": "feature"}
    ).content.decode()
    assert 'id="review-external-id">ticket-tie<' in third
    assert "split with no majority" in third and "Nothing highlighted" in third
    assert not any('class="suggested"' in _button(third, key) for key in ("bug", "feature", "billing"))
    gt = GroundTruth.objects.get(item=items["ticket-unanimous"])
    assert (gt.label, gt.method, gt.decided_by_id) == ("feature", "adjudicated", reviewer.pk)
