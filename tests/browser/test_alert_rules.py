"""The alert rules page (create a rule in the form; the rate bar and flag) and the alerts page
(acknowledge with the keyboard and a button), with screenshots at 390 px."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertRule, Channel, Event
from alerts.tasks import alerts_actions_update
from tests.browser.conftest import login
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = "/tmp/loupe-alerts-shots"


def test_create_a_rule_then_acknowledge_alerts(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    hook = Channel.objects.create(project=project, name="ops hook", kind="webhook", url="http://127.0.0.1:9/h")

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/alert-rules")
    assert "No alert rules yet" in page.locator("#rules-empty").inner_text()
    page.fill("#rule-form input[name=name]", "Regressions")
    page.check("#rule-form input[name=event_types][value='bug.regressed']")
    page.check("#rule-form input[name=event_types][value='bug.occurrences']")
    page.select_option("#rule-form select[name=priority_max]", "p1")
    page.fill("#rule-form input[name=min_occurrences]", "3")
    page.fill("#rule-form input[name=window_minutes]", "30")
    page.check(f"#rule-form input[name=channels][value='{hook.pk}']")
    page.click("#rule-save")
    page.locator("#rules-table .rule-row").wait_for()
    rule = AlertRule.objects.get(project=project)
    assert rule.name == "Regressions" and rule.event_types == ["bug.occurrences", "bug.regressed"]
    assert rule.conditions == {"priority_max": "p1", "min_occurrences": 3, "window_minutes": 30}
    assert list(rule.channels.all()) == [hook]
    assert "no alerts yet" in page.locator("#rules-table").inner_text()

    # a bad form is refused next to it
    page.fill("#rule-form input[name=name]", "Regressions")
    page.check("#rule-form input[name=event_types][value='bug.created']")
    page.click("#rule-save")
    page.locator("#rule-error", has_text="this name exists").wait_for()
    assert AlertRule.objects.count() == 1

    # alerts: a flagged history makes the bar red on the rules page
    old = timezone.now() - timedelta(days=9)
    for i in range(6):
        ev = Event.objects.create(
            project=project, type="bug.regressed", subject=f"Bug {i} regressed", data={}, key=f"bug:{i}", created_at=old
        )
        Alert.objects.create(project=project, rule=rule, event=ev, key=f"bug:{i}", created_at=old)
    fresh = [
        Alert.objects.create(
            project=project,
            rule=rule,
            event=Event.objects.create(
                project=project, type="bug.regressed", subject=f"Fresh {i} regressed", data={}, key=f"bug:{10 + i}"
            ),
            key=f"bug:{10 + i}",
        )
        for i in range(2)
    ]
    page.reload()
    assert "no alerts yet" in page.locator(".rate-cell").inner_text()  # the rate stored when it was created
    alerts_actions_update()  # the periodic task computes and stores it
    page.reload()
    assert "Rarely acted on" in page.locator(".rule-flag").inner_text()
    assert "as of" in page.locator(".rate-at").inner_text()
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=f"{SHOTS}-rules-390.png", full_page=True)

    page.goto(f"{live_server.url}/projects/{project.pk}/alerts")
    rows = page.locator(".alert-row")
    assert rows.count() == 8
    page.keyboard.press("j")  # the newest first
    page.keyboard.press("a")
    rows.nth(0).locator(".alert-status", has_text="Acknowledged").wait_for()
    assert Alert.objects.get(pk=fresh[1].pk).status == "acknowledged"
    page.keyboard.press("j")
    page.keyboard.press("s")
    rows.nth(1).locator(".alert-status", has_text="Snoozed").wait_for()
    rows.nth(2).locator(".alert-ack").click()
    rows.nth(2).locator(".alert-status", has_text="Acknowledged").wait_for()
    statuses = dict(Alert.objects.values_list("key", "status"))
    assert (statuses["bug:11"], statuses["bug:10"], statuses["bug:5"]) == ("acknowledged", "snoozed", "acknowledged")
    page.screenshot(path=f"{SHOTS}-alerts-390.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width


def test_empty_alerts_page_for_a_member(page, live_server):
    project = ProjectFactory(creator=UserFactory(), name="Quiet")
    from labeling.models import Role
    from tests.labeling.factories import add_member

    member = add_member(project, role=Role.ANNOTATOR)
    login(page, live_server, member)
    page.goto(f"{live_server.url}/projects/{project.pk}/alerts")
    assert "No alerts yet" in page.locator("#alerts-empty").inner_text()
    page.goto(f"{live_server.url}/projects/{project.pk}/alert-rules")
    assert "A manager of this project can create them" in page.locator("#rules-empty").inner_text()
    assert page.locator("#rule-form").count() == 0
