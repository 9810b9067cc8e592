"""Action rates after a simulated month: people act on regressions and on bugs that occur often,
and ignore the rest. The rates are exact, the ignored rule is flagged with a suggested
min_occurrences computed from the history, and a rule ignored whatever the count gets a digest."""

from datetime import timedelta
from unittest.mock import patch

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Alert, AlertAction, AlertRule, Event
from alerts.selectors.rules import rule_action_stats
from alerts.tasks import alerts_actions_update
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def alert_at(project, rule, *, key, type, at, acted, occurrences=1):
    """An alert about `key` at `at`, after `occurrences` events about the key in the hour before."""
    for i in range(occurrences - 1):
        Event.objects.create(
            project=project,
            type="bug.occurrences",
            subject="o",
            data={},
            key=key,
            created_at=at - timedelta(minutes=5 + i),
        )
    ev = Event.objects.create(project=project, type=type, subject="s", data={}, key=key, created_at=at)
    return Alert.objects.create(
        project=project,
        rule=rule,
        event=ev,
        key=key,
        created_at=at,
        action=AlertAction.TRIAGED if acted else AlertAction.NONE,
        action_at=at + timedelta(hours=1) if acted else None,
    )


@pytest.fixture
def month(project):
    """Four weeks of alerts, all older than the action window except the last few days'."""
    now = timezone.now()
    regressions = AlertRule.objects.create(project=project, name="Regressions", event_types=["bug.regressed"])
    noisy = AlertRule.objects.create(
        project=project, name="Occurrences", event_types=["bug.occurrences"], conditions={"min_occurrences": 1}
    )
    hopeless = AlertRule.objects.create(project=project, name="Exports", event_types=["export.finished"])
    for day in range(8, 28):
        at = now - timedelta(days=day)
        # regressions: acted on 3 days out of 4
        alert_at(project, regressions, key=f"bug:{day}", type="bug.regressed", at=at, acted=day % 4 != 0)
        # occurrences: people acted only on the bugs that occurred 6+ times (every fifth day)
        often = day % 5 == 0
        alert_at(
            project,
            noisy,
            key=f"bug:{100 + day}",
            type="bug.occurrences",
            at=at + timedelta(hours=2),
            acted=often,
            occurrences=6 if often else 1,
        )
        alert_at(project, hopeless, key="export", type="export.finished", at=at, acted=False)
    # undecided: two days old, no action yet (left out of the rates)
    alert_at(project, noisy, key="bug:500", type="bug.occurrences", at=now - timedelta(days=2), acted=False)
    # older than four weeks: left out
    alert_at(project, noisy, key="bug:600", type="bug.occurrences", at=now - timedelta(days=40), acted=False)
    return regressions, noisy, hopeless


def test_rates_flags_and_the_suggested_threshold(month):
    regressions, noisy, hopeless = month
    r = rule_action_stats(rule=regressions)
    assert (r["alerts"], r["acted"], r["action_rate"], r["flagged"]) == (20, 15, 0.75, False)
    assert r["by_type"] == {"bug.regressed": {"alerts": 20, "acted": 15, "action_rate": 0.75}}
    n = rule_action_stats(rule=noisy)
    assert (n["alerts"], n["acted"], n["action_rate"], n["flagged"]) == (20, 4, 0.2, False)  # 20% is not under 20%
    # one more ignored week tips it under the bar
    now = timezone.now()
    for day in range(8, 12):
        alert_at(
            noisy.project,
            noisy,
            key=f"bug:{300 + day}",
            type="bug.occurrences",
            at=now - timedelta(days=day, hours=5),
            acted=False,
        )
    n = rule_action_stats(rule=noisy)
    assert (n["alerts"], n["acted"], round(n["action_rate"], 4), n["flagged"]) == (24, 4, round(4 / 24, 4), True)
    assert n["by_key_kind"] == {"bug": {"alerts": 24, "acted": 4, "action_rate": round(4 / 24, 4)}}
    s = n["suggestion"]
    assert (s["change"], s["min_occurrences"], s["keeps_acted"], s["drops_ignored"]) == ("min_occurrences", 6, 1.0, 1.0)
    h = rule_action_stats(rule=hopeless)
    assert (h["alerts"], h["acted"], h["action_rate"], h["flagged"]) == (20, 0, 0.0, True)
    assert h["suggestion"]["change"] == "digest" and h["suggestion"]["digest_minutes"] == 60


def test_the_rule_api_shows_the_rate_and_the_flag(user, project, month):
    _, _, hopeless = month
    body = client_for(user).get(f"/api/projects/{project.pk}/alert-rules/{hopeless.pk}").json()
    assert (body["alerts"], body["acted"], body["action_rate"], body["flagged"]) == (20, 0, 0.0, True)
    assert body["suggestion"]["change"] == "digest"
    listed = {r["name"]: r for r in client_for(user).get(f"/api/projects/{project.pk}/alert-rules").json()}
    assert listed["Regressions"]["action_rate"] == 0.75 and not listed["Regressions"]["flagged"]
    assert client_for(user).get(f"/api/projects/{project.pk}/alert-rules", {"weeks": 0}).status_code == 400
    short = client_for(user).get(f"/api/projects/{project.pk}/alert-rules/{hopeless.pk}", {"weeks": 2}).json()
    assert short["alerts"] == 6  # days 8 to 13 ago (day 14 is a moment older than two weeks by now)


def test_the_periodic_task_stores_each_rules_rate_with_when(month):
    regressions, noisy, hopeless = month
    assert AlertRule.objects.filter(action_stats__isnull=False).count() == 0
    before = timezone.now()
    assert alerts_actions_update() == 0  # the task function, as beat runs it (nothing to learn here)
    for rule in month:
        rule.refresh_from_db()
        assert rule.action_stats_at is not None and rule.action_stats_at >= before
        live = rule_action_stats(rule=rule)
        assert {k: rule.action_stats[k] for k in live} == live
    assert (regressions.action_stats["action_rate"], regressions.action_stats["flagged"]) == (0.75, False)
    assert hopeless.action_stats["flagged"] and hopeless.action_stats["suggestion"]["change"] == "digest"
    # one more acted-on alert: the stored rate follows at the next run
    alert_at(
        hopeless.project, hopeless, key="export", type="export.finished", at=before - timedelta(days=9), acted=True
    )
    alerts_actions_update()
    hopeless.refresh_from_db()
    assert (hopeless.action_stats["alerts"], hopeless.action_stats["acted"]) == (21, 1)


def test_the_periodic_task_stores_the_rate_after_learning_actions(project):
    """An alert whose action is learned in this run counts as acted on in the rate stored by it."""
    rule = AlertRule.objects.create(project=project, name="Regressions", event_types=["bug.regressed"])
    with patch("alerts.services.alerts.alerts_actions_update") as learn:
        learn.side_effect = lambda **kw: Alert.objects.filter(rule=rule).update(action=AlertAction.TRIAGED) and 1
        alert_at(project, rule, key="bug:1", type="bug.regressed", at=timezone.now() - timedelta(days=9), acted=False)
        assert alerts_actions_update() == 1
    rule.refresh_from_db()
    assert (rule.action_stats["alerts"], rule.action_stats["acted"]) == (1, 1)


def test_the_rules_page_reads_the_stored_rate_in_a_bounded_number_of_queries(user, project, month):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = Client()
    c.force_login(user)
    url = f"/projects/{project.pk}/alert-rules"
    res = c.get(url)
    assert res.status_code == 200 and b"not computed yet" in res.content and b"Rarely acted on" not in res.content
    alerts_actions_update()
    with CaptureQueriesContext(connection) as many:
        res = c.get(url)
    assert b"Rarely acted on" in res.content and b"75%" in res.content and b"as of" in res.content
    assert len(many) <= 15
    # twice the alerts and a rule more: not one query more
    regressions, noisy, hopeless = month
    for day in range(8, 28):
        alert_at(
            project,
            hopeless,
            key="export",
            type="export.finished",
            at=timezone.now() - timedelta(days=day, hours=3),
            acted=False,
        )
    AlertRule.objects.create(project=project, name="More", event_types=["bug.created"])
    alerts_actions_update()
    with CaptureQueriesContext(connection) as more:
        assert c.get(url).status_code == 200
    assert len(more) == len(many), [q["sql"] for q in more.captured_queries]
