"""The evaluation page: verdict, confusion matrix, recall chart, slices (the dropped one first and
marked), regressions grouped by bug with click-through to that bug's items; desktop and phone."""

import pytest

from tests.browser.conftest import login
from tests.bugqueue.evaluation_factories import build_evaluation
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_evaluation_page_and_click_through_to_one_bugs_regressions(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    project.slice_fields = ["channel"]
    project.save(update_fields=["slice_fields"])
    built = build_evaluation(project, actor=manager)

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/evaluations/{built.candidate.pk}")
    section = page.locator(f"#result-{built.dataset.pk}")
    assert section.locator(".ev-verdict").inner_text() == "failed"
    assert "accuracy 33.3% is below the minimum 80.0%" in section.locator(".ev-reasons").inner_text()
    assert "channel=email" in section.locator(".ev-warnings").inner_text()
    assert "m-prod" in section.locator(".ev-baseline").inner_text()

    matrix = section.locator("table.ev-confusion")
    assert matrix.locator("thead th").all_inner_texts()[1:4] == ["account", "billing", "shipping"]
    billing = matrix.locator("tbody tr", has=page.locator("th", has_text="billing"))
    assert billing.locator("td").all_inner_texts() == ["3", "0", "0", "3"]  # true billing, predicted account ×3

    canvas = section.locator(f"#recall-chart-{built.result.pk}")
    assert canvas.is_visible()
    bars = page.evaluate(
        "(id) => { const c = Chart.getChart(document.getElementById(id)); return c && c.data.datasets[0].data; }",
        f"recall-chart-{built.result.pk}",
    )
    assert bars == [50, 0, 100]

    slices = section.locator("table.ev-slices tbody tr")
    assert slices.count() == 2
    assert "dropped" in slices.nth(0).get_attribute("class") and "email" in slices.nth(0).inner_text()
    assert "dropped" not in slices.nth(1).get_attribute("class")
    assert section.locator("table.ev-slices tr.dropped").evaluate("tr => getComputedStyle(tr).backgroundColor") != (
        "rgba(0, 0, 0, 0)"
    )
    section.locator("table.ev-slices th", has_text="value").click()  # sort by value: chat, email
    assert "chat" in slices.nth(0).inner_text()

    by_bug = section.locator("table.ev-regressions tbody tr")
    assert by_bug.count() == 2
    assert built.bug_a.title in by_bug.nth(0).inner_text() and by_bug.nth(0).locator("strong").inner_text() == "3"
    assert by_bug.nth(1).locator("strong").inner_text() == "1"
    page.screenshot(path="/tmp/loupe-evaluation.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("() => document.querySelector('main').scrollWidth")
    assert width <= 390
    page.screenshot(path="/tmp/loupe-evaluation-phone.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.locator(f"#result-{built.dataset.pk} tr.regression-bug[data-bug='{built.bug_a.pk}'] a.items-link").click()
    page.wait_for_selector("#bug-filter")
    assert page.url.endswith(f"/failures?bug={built.bug_a.pk}")
    rows = page.locator("#failures tbody tr")
    assert rows.count() == 3
    first = rows.nth(0).locator("td").all_inner_texts()
    assert first[:4] == ["ev0", "billing", "account", "billing"]  # id, truth, candidate, baseline
    page.screenshot(path="/tmp/loupe-evaluation-failures.png", full_page=True)
    page.locator("a", has_text="← evaluation").click()
    page.wait_for_selector(f"#result-{built.dataset.pk}")
