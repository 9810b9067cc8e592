"""The channels page: managers only, an empty state, a form per kind whose refusals are shown with
the input kept, the secret shown once, edit, test, log and delete through plain form posts."""

import pytest
from django.test import Client

from alerts.models import Channel, Delivery
from labeling.models import Role
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def page(project):
    return f"/projects/{project.pk}/channels"


def logged_in(user):
    c = Client()
    c.force_login(user)
    return c


def test_managers_see_the_page_with_its_empty_state_and_the_tab(user, project):
    res = logged_in(user).get(page(project))
    assert res.status_code == 200
    html = res.content.decode()
    assert 'id="channels-empty"' in html and "No channel yet" in html
    assert f'href="/projects/{project.pk}/channels" class="active">Alerts</a>' in html
    assert f'href="/projects/{project.pk}/alert-rules"' in html
    for kind in ("webhook", "email", "chat"):
        assert f'id="create-{kind}"' in html


@pytest.mark.parametrize("role, status", [(Role.ANNOTATOR, 403), (Role.REVIEWER, 403), (None, 404)])
def test_others_are_refused(user, project, role, status):
    other = add_member(project, role=role) if role else UserFactory()
    assert logged_in(other).get(page(project)).status_code == status
    assert logged_in(other).post(page(project), {"action": "create", "kind": "webhook"}).status_code == status
    assert not Channel.objects.exists()
    if role:
        tabs = logged_in(other).get(f"/projects/{project.pk}").content.decode()
        assert "Alerts</a>" not in tabs


def test_create_shows_the_secret_once_and_a_refusal_keeps_the_input(user, project):
    c = logged_in(user)
    bad = c.post(page(project), {"action": "create", "kind": "webhook", "name": "ops", "url": "ftp://x"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "http:// or https://" in html and 'value="ftp://x"' in html
    assert not Channel.objects.exists()

    made = c.post(page(project), {"action": "create", "kind": "webhook", "name": "ops", "url": "https://e.example/h"})
    assert made.status_code == 201
    channel = Channel.objects.get()
    assert channel.secret in made.content.decode()
    again = c.get(page(project)).content.decode()
    assert channel.secret not in again and "https://e.example/h" in again

    mail = c.post(
        page(project),
        {"action": "create", "kind": "email", "name": "mail", "emails": "a@example.com, b@example.com"},
    )
    assert mail.status_code == 201
    assert Channel.objects.get(name="mail").emails == ["a@example.com", "b@example.com"]


def test_edit_test_log_and_delete(user, project):
    c = logged_in(user)
    c.post(page(project), {"action": "create", "kind": "webhook", "name": "ops", "url": "https://e.example/h"})
    channel = Channel.objects.get()

    refused = c.post(page(project), {"action": "update", "channel": channel.pk, "name": "ops", "url": "nope"})
    assert refused.status_code == 400 and "http:// or https://" in refused.content.decode()
    saved = c.post(
        page(project), {"action": "update", "channel": channel.pk, "name": "primary", "url": "https://e.example/2"}
    )
    assert saved.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "primary" and not channel.enabled  # the enabled box was not ticked
    assert channel.disabled_reason == f"Disabled by {user.username}."
    assert c.post(page(project), {"action": "test", "channel": channel.pk}).status_code == 409
    c.post(
        page(project),
        {"action": "update", "channel": channel.pk, "name": "primary", "url": "https://e.example/2", "enabled": "on"},
    )

    sent = c.post(page(project), {"action": "test", "channel": channel.pk})
    assert sent.status_code == 302 and sent["Location"].endswith(f"?log={channel.pk}#log")
    log = c.get(f"{page(project)}?log={channel.pk}").content.decode()
    assert 'id="log-table"' in log and "alert.test" in log and 'data-status="pending"' in log

    assert c.post(page(project), {"action": "delete", "channel": channel.pk}).status_code == 302
    assert not Channel.objects.exists() and not Delivery.objects.exists()
    gone = c.post(page(project), {"action": "test", "channel": channel.pk}, follow=True)
    assert "no longer exists" in gone.content.decode()


def test_an_unknown_action_or_kind_is_a_400_shown_on_the_page(user, project):
    c = logged_in(user)
    for form in ({}, {"action": "explode"}, {"action": "create", "kind": "pager", "name": "x"}):
        res = c.post(page(project), form)
        assert res.status_code == 400 and 'id="page-error"' in res.content.decode(), form
    assert not Channel.objects.exists()
