import pytest

from labeling.services.ingestion import items_ingest
from tests.browser.conftest import login
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_then_my_projects_with_counts(page, live_server):
    user = UserFactory()
    mine = ProjectFactory(creator=UserFactory(), name="Tickets")
    add_member(mine, user)
    ProjectFactory(creator=UserFactory(), name="Secret project")
    items_ingest(project=mine, rows=[{"external_id": f"x{i}", "payload": {"text": "hi"}} for i in range(7)])

    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url  # anonymous users are sent to the login page
    login(page, live_server, user)
    cards = page.locator(".project-card")
    assert cards.count() == 1
    assert "Tickets" in cards.first.inner_text()
    assert cards.first.locator(".n-items").inner_text() == "7"
    assert "Secret project" not in page.content()
    page.screenshot(path="/tmp/loupe-home.png")


def test_wrong_password_shows_an_error(page, live_server):
    user = UserFactory()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "wrong-password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").is_visible()


def test_empty_state_for_a_user_without_projects(page, live_server):
    login(page, live_server, UserFactory())
    assert "not a member of any project" in page.locator(".empty").inner_text()
