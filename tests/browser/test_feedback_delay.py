import pytest

from labeling.models import Role
from labeling.services.feedback_rollup import feedback_rollup_refresh
from tests.browser.conftest import login
from tests.labeling.factories import (
    DAY,
    ProjectFactory,
    UserFactory,
    add_member,
    cutoff_now,
    lognormal,
    synthetic_traffic,
)
from tests.labeling.feedback_data import stage_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = ["chart-km", "chart-hist", "chart-coverage", "chart-backlog", "chart-live"]


def test_delay_dashboard_draws_every_chart_and_shows_the_slo(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Fraud model")
    synthetic_traffic(project, n=600, days=45, cutoff=cutoff_now(), delays=lognormal(3 * DAY, 1.0), seed=2)
    synthetic_traffic(
        project,
        n=150,
        days=10,
        cutoff=cutoff_now(),
        delays=lognormal(DAY, 0.7),
        seed=4,
        model_version="v2",
        prefix="n",
        sources=("user_correction",),
    )
    feedback_rollup_refresh(project_id=project.pk)

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/delay")
    status = page.locator("#slo-status").inner_text()
    assert "SLO breached" in status or "SLO met" in status
    assert "within 7.0 d" in status
    for canvas in CHARTS:
        assert page.locator(f"canvas#{canvas}").count() == 1
    drawn = page.evaluate(
        "ids => ids.map(id => { const c = Chart.getChart(id); "
        "return !!c && c.data.datasets.some(d => d.data.length > 0); })",
        CHARTS,
    )
    assert drawn == [True] * len(CHARTS)
    assert page.locator("#n-predictions").inner_text() == "750"
    assert page.locator("#cohort-table tbody tr").count() >= 7
    page.screenshot(path="/tmp/loupe-delay.png", full_page=True)
    staffing = page.locator("#staffing").inner_text()
    assert "Review hours per day" in staffing and "annotations per completed item" in staffing
    page.locator("#staffing").screenshot(path="/tmp/loupe-agree-staffing.png")

    # filters: keyboard to the model version, pick v2, apply
    page.keyboard.press("f")
    assert page.evaluate("document.activeElement.id") == "f-model-version"
    page.select_option("#f-model-version", "v2")
    page.click("#delay-filters button[type=submit]")
    page.wait_for_url("**model_version=v2**")
    assert page.locator("#n-predictions").inner_text() == "150"
    page.select_option("#f-source", "user_correction")
    page.click("#delay-filters button[type=submit]")
    page.wait_for_url("**source=user_correction**")
    assert page.evaluate("!!Chart.getChart('chart-km')")


def test_empty_state_and_annotators_do_not_see_it(page, live_server):
    manager, annotator = UserFactory(), UserFactory()
    project = ProjectFactory(creator=manager)
    add_member(project, annotator, Role.ANNOTATOR)
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/delay")
    assert "No predictions to measure yet" in page.locator("#delay-empty").inner_text()
    assert "no predictions yet" in page.locator("#slo-status").inner_text()
    page.goto(f"{live_server.url}/projects/{project.pk}/delay?since=garbage")
    assert "since" in page.locator("[role=alert]").inner_text()

    page.context.clear_cookies()
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    assert page.locator("#project-tabs a", has_text="Feedback delay").count() == 0
    response = page.goto(f"{live_server.url}/projects/{project.pk}/delay")
    assert response.status == 403


def test_stage_and_slice_splits(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Support router")
    stage_world(project, manager)

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/delay")
    rows = page.locator("#stage-table tr.stage-row")
    assert rows.count() == 4
    assert [rows.nth(i).get_attribute("data-stage") for i in range(4)] == [
        "production",
        "shadow",
        "candidate",
        "unregistered",
    ]
    assert rows.nth(0).locator(".acc").inner_text() == "75.0%"
    assert rows.nth(1).locator(".acc").inner_text() == "87.5%"
    assert page.evaluate("Chart.getChart('chart-stages').data.datasets[0].data") == [0.75, 0.875, 1.0]
    assert "Choose a field" in page.locator("#slice-hint").inner_text()

    # split by channel from the filter form
    page.select_option("#f-slice", "channel")
    page.click("#delay-filters button[type=submit]")
    page.wait_for_url("**slice=channel**")
    assert page.locator("#slice-table tbody tr").count() == 3
    first = page.locator("#slice-table tbody tr").first.inner_text()
    assert first.startswith("web") and "78.6%" in first and "66.7%" in first and "83.3%" in first
    labels = page.evaluate("Chart.getChart('chart-slices').data.labels")
    assert labels == ["web", "app", "(none)"]
    page.screenshot(path="/tmp/loupe-delay-split.png", full_page=True)

    # only the shadow model
    page.select_option("#f-stage", "shadow")
    page.click("#delay-filters button[type=submit]")
    page.wait_for_url("**stage=shadow**")
    assert page.locator("#n-predictions").inner_text() == "10"
    assert page.locator("#stage-table tr.stage-row").count() == 1
    assert "83.3%" in page.locator("#slice-table tbody tr").first.inner_text()

    # a phone: nothing wider than the screen
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/projects/{project.pk}/delay?slice=channel")
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390, overflow
    assert page.locator("#stage-table").is_visible() and page.locator("#chart-slices").is_visible()
    page.screenshot(path="/tmp/loupe-delay-split-phone.png", full_page=True)
    page.locator("#delay-filters").screenshot(path="/tmp/loupe-delay-phone-filters.png")
    page.locator("#stage-split").screenshot(path="/tmp/loupe-delay-phone-stages.png")
    page.locator("#slice-split").screenshot(path="/tmp/loupe-delay-phone-slices.png")


def test_slice_fields_declared_on_the_project_page(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    login(page, live_server, manager)
    synthetic_traffic(project, n=40, days=5, cutoff=cutoff_now(), delays=lognormal(DAY, 0.5), seed=1)
    feedback_rollup_refresh(project_id=project.pk)
    page.goto(f"{live_server.url}/projects/{project.pk}/delay")
    assert "No model version is registered" in page.locator("#stage-empty").inner_text()
    assert "No slice fields declared" in page.locator("#slice-empty").inner_text()
    assert page.locator("#f-slice").is_disabled()
    page.locator("#stage-split").screenshot(path="/tmp/loupe-delay-empty-stages.png")
    page.locator("#slice-split").screenshot(path="/tmp/loupe-delay-empty-slices.png")
    page.click("#slice-empty a")
    page.fill("#f-slice-fields", "channel bug")
    page.click("#slice-fields button[type=submit]")
    assert "reserved" in page.locator(".msg.error").inner_text()
    page.fill("#f-slice-fields", "channel, customer_tier")
    page.click("#slice-fields button[type=submit]")
    assert page.locator("#slice-fields-list").inner_text() == "channel, customer_tier"
    page.locator("#slice-fields").screenshot(path="/tmp/loupe-project-slice-fields.png")
    page.goto(f"{live_server.url}/projects/{project.pk}/delay")
    assert page.locator("#f-slice option").all_inner_texts() == ["No slice", "channel", "customer_tier"]
