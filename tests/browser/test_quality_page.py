"""The quality page: histogram, annotator table, agreement figures, confusion heatmap, run now."""

from unittest import mock

import numpy as np
import pytest

from labeling.models import QualityRun
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute, quality_run_request
from labeling.tasks import quality_run_task
from tests.browser.conftest import login
from tests.labeling.factories import annotators, crowd_project, load_crowd, simulate_crowd

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_quality_page_shows_scores_annotators_and_agreement(page, live_server):
    project, manager = crowd_project(k=4)
    users = annotators(project, 6)
    crowd = simulate_crowd(n_items=150, accuracies=np.linspace(0.55, 0.95, 6), n_classes=4, per_item=3, seed=8)
    load_crowd(project, users, crowd)
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk)
    run = quality_run_execute(run_id=run.pk)

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/quality")
    assert page.locator("#project-tabs a.active").inner_text() == "Quality"
    assert "150" in page.locator("#run-counts").inner_text()
    # Chart.js drew the histogram (a Chart instance is attached to the canvas).
    page.wait_for_function("window.Chart && Chart.getChart(document.getElementById('quality-histogram'))")
    total = page.evaluate(
        "Chart.getChart(document.getElementById('quality-histogram')).data.datasets"
        ".reduce((s, d) => s + d.data.reduce((a, b) => a + b, 0), 0)"
    )
    assert total == 150
    # The agreement, the confusion heatmap (out of band) and the annotator table load after the page.
    page.wait_for_selector("#annotator-table")
    page.wait_for_selector("#confusion-heatmap")
    assert page.locator("#annotator-table tbody tr").count() == 6
    assert page.locator(".loading").count() == 0
    assert page.locator("#alpha").inner_text() not in ("", "—")
    assert page.locator("#confusion-heatmap tbody tr").count() == 4
    page.screenshot(path="/tmp/loupe-quality.png", full_page=True)
    assert "over the first 3 labels of 150 items" in page.locator("#fleiss").inner_text()
    page.locator("#agreement").screenshot(path="/tmp/loupe-agree-agreement.png")

    with mock.patch.object(quality_run_task, "delay") as delay:
        page.click("#run-now")
        page.wait_for_selector("#active-run")
    new = QualityRun.objects.filter(project=project).order_by("-id").first()
    assert new.pk != run.pk and new.status == "queued"
    delay.assert_called_once_with(new.pk)
    assert page.locator("#run-now").is_disabled()


def test_quality_page_before_any_run(page, live_server):
    project, manager = crowd_project(k=3)
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/quality")
    assert "No quality run yet" in page.locator("#no-run").inner_text()


def test_accept_rule_card_at_phone_width(page, live_server):
    """A calibrated project after reviewers decided a first run's review items: the card shows the
    derived threshold, the calibration curve, the audited error and the other targets, at 390px."""
    from labeling.models import Item
    from labeling.services.resolution import item_resolve

    project, manager = crowd_project(
        k=4, annotations_per_item=5, max_annotations_per_item=5, accept_mode="calibrated", audit_rate=0.2
    )
    users = annotators(project, 10)
    crowd = simulate_crowd(n_items=400, accuracies=np.linspace(0.55, 0.95, 10), n_classes=4, per_item=5, seed=6)
    items = load_crowd(project, users, crowd)
    truth = {it.pk: f"c{crowd.true[i]}" for i, it in enumerate(items)}

    def run_now():
        with mock.patch.object(quality_service, "_enqueue"):
            run = quality_run_request(project_id=project.pk)
        return quality_run_execute(run_id=run.pk)

    first = run_now()
    # Reviewers decide the audited items and most others; the rest are still disputed for the next run.
    review = list(first.item_results.filter(outcome="review").order_by("-audit", "item_id"))
    for r in review[: len(review) * 3 // 4]:
        item_resolve(item=Item.objects.get(pk=r.item_id), reviewer=manager, label=truth[r.item_id])
    second = run_now()
    cal = second.calibration
    assert cal["rule"] == "calibrated" and cal["weighed_on"] == "run" and cal["threshold"] is not None

    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/quality")
    card = page.locator("#accept-rule")
    assert "Calibrated" in card.inner_text() and "2%" in card.inner_text()
    assert f"fitted on {cal['decisions']} reviewer decisions" in card.inner_text()
    assert "estimated chance of being right" in card.inner_text()
    assert "number of annotations" in page.locator("#accept-estimate").inner_text()
    assert f"{cal['threshold']:.3f}" == page.locator("#derived-threshold").inner_text()
    assert "95% CI" in page.locator("#audited-error").inner_text()
    rows = page.locator("#accept-targets tbody tr")
    assert rows.count() == 4
    assert rows.nth(3).inner_text().split()[-1] == str(cal["would_accept"]["0.1"])
    page.wait_for_function("window.Chart && Chart.getChart(document.getElementById('calibration-curve'))")
    counts = page.evaluate(
        "Chart.getChart(document.getElementById('calibration-curve')).data.datasets[0].data.filter(v => v !== null).length"
    )
    assert counts == sum(1 for p in cal["curve"] if p["count"])
    axis = page.evaluate("Chart.getChart(document.getElementById('calibration-curve')).options.scales.x.title.text")
    assert axis == "estimated chance the consensus is right"
    # Nothing wider than the phone.
    assert page.evaluate("document.querySelector('#accept-rule').scrollWidth") <= 390
    card.screenshot(path="/tmp/loupe-accept-rule.png")
    page.screenshot(path="/tmp/loupe-quality-390.png", full_page=True)

    # The review pane gives the item's estimated chance of being right beside the run's threshold.
    page.goto(f"{live_server.url}/projects/{project.pk}/review")
    page.wait_for_selector("#review-item")
    shown = Item.objects.get(project=project, external_id=page.locator("#review-external-id").inner_text())
    result = second.item_results.get(item_id=shown.pk)
    assert page.locator("#review-p-right").inner_text() == f"{result.p_right:.3f}"
    assert f"the run accepted at ≥ {cal['threshold']:.3f}" in page.locator("#review-item").inner_text()
    page.screenshot(path="/tmp/loupe-review-p-right.png", full_page=True)
