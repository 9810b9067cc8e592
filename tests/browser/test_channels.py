import hashlib
import hmac

import pytest

from alerts.models import Channel
from tests.alerts.conftest import Receiver
from tests.browser.conftest import login
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_manager_adds_a_webhook_sends_a_test_and_sees_it_delivered(page, live_server, eager_celery, tmp_path):
    receiver = Receiver()
    try:
        manager = UserFactory()
        project = ProjectFactory(creator=manager, name="Tickets")
        login(page, live_server, manager)
        page.goto(f"{live_server.url}/projects/{project.pk}")
        page.click("#project-tabs >> text=Alerts")
        assert page.locator("#project-tabs a.active").inner_text() == "Alerts"
        assert "No channel yet" in page.locator("#channels-empty").inner_text()

        # a bad URL is refused with the input kept, then the right one is added (Enter submits)
        page.fill("#create-webhook-name", "ops hook")
        page.fill("#create-webhook-url", "ftp://example.com")
        with page.expect_navigation():
            page.press("#create-webhook-url", "Enter")
        assert "http:// or https://" in page.locator("#create-webhook .create-error").inner_text()
        page.fill("#create-webhook-url", receiver.url)
        with page.expect_navigation():
            page.press("#create-webhook-url", "Enter")
        secret = page.locator("#secret-value").inner_text().strip()
        assert secret == Channel.objects.get(name="ops hook").secret

        page.set_viewport_size({"width": 390, "height": 844})  # the rest on a phone
        row = page.locator("tr.channel-row", has_text="ops hook")
        assert "enabled" in row.locator(".state").inner_text()
        row.locator("button.test-btn").click()
        result = row.locator(".test-result")
        page.wait_for_function("document.querySelector('.test-result').textContent.includes('delivered')")
        assert result.inner_text() == "Test delivered (HTTP 200)."
        assert row.locator(".last").inner_text().startswith("delivered HTTP 200")
        page.wait_for_selector("#log-table tr.delivery-row")
        log_row = page.locator("#log-table tr.delivery-row").first
        assert log_row.get_attribute("data-status") == "delivered"
        assert "alert.test" in log_row.inner_text()

        # the receiver can check the signature with the secret it was shown
        ((_, headers, raw),) = receiver.requests
        mac = hmac.new(secret.encode(), headers["X-Loupe-Timestamp"].encode() + b"." + raw, hashlib.sha256)
        assert headers["X-Loupe-Signature"] == f"sha256={mac.hexdigest()}"

        # readable on a phone: nothing wider than the screen
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        page.screenshot(path=str(tmp_path / "channels-390.png"), full_page=True)
    finally:
        receiver.close()
