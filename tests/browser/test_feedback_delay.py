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
