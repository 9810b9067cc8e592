"""Password guessing is cut short: failed logins are counted per username tried and per client
address (django-axes), and past the limit the token endpoint, the login form and the admin answer 429
with Retry-After until the cool-off has passed."""

import time
from contextlib import contextmanager
from types import SimpleNamespace
from unittest import mock

import pytest
from django.test import Client

from tests.labeling.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def token_post(api, username, password, addr="10.0.0.1", **extra):
    return api.post(
        "/api/auth/token", {"username": username, "password": password}, format="json", REMOTE_ADDR=addr, **extra
    )


@contextmanager
def cache_clock_ahead(seconds):
    """The cache's clock (LocMem and the expiry it computes) moved forward by that many seconds."""
    later = time.time() + seconds
    clock = SimpleNamespace(time=lambda: later)
    with (
        mock.patch("django.core.cache.backends.base.time", clock),
        mock.patch("django.core.cache.backends.locmem.time", clock),
    ):
        yield


def assert_locked(res, settings):
    assert res.status_code == 429
    assert res["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    err = res.json()["error"]
    assert err["code"] == "throttled" and "Too many failed logins" in err["message"]


def test_wrong_passwords_for_one_account_lock_that_account_from_any_address(api, user, settings):
    limit = settings.AXES_FAILURE_LIMIT
    codes = [token_post(api, user.username, "wrong-guess", addr=f"10.0.1.{i}").status_code for i in range(limit + 5)]
    assert codes[: limit - 1] == [400] * (limit - 1)
    assert codes[limit - 1 :] == [429] * 6
    assert_locked(token_post(api, user.username, "wrong-guess", addr="10.0.2.1"), settings)
    # locked means locked: the right password is refused too, from a fresh address
    assert_locked(token_post(api, user.username, PASSWORD, addr="10.0.2.2"), settings)
    # another account, even from the addresses used, is untouched
    other = UserFactory()
    assert token_post(api, other.username, PASSWORD, addr="10.0.1.0").status_code == 200


def test_wrong_passwords_from_one_address_lock_that_address_for_every_account(api, settings):
    limit = settings.AXES_FAILURE_LIMIT
    victims = [UserFactory() for _ in range(limit)]
    codes = [token_post(api, v.username, "wrong-guess", addr="10.0.3.1").status_code for v in victims]
    assert codes == [400] * (limit - 1) + [429]
    fresh = UserFactory()
    assert_locked(token_post(api, fresh.username, PASSWORD, addr="10.0.3.1"), settings)
    # each account had one failure only: from another address they log in
    assert token_post(api, victims[0].username, PASSWORD, addr="10.0.3.2").status_code == 200
    assert token_post(api, fresh.username, PASSWORD, addr="10.0.3.2").status_code == 200


def test_lockout_ends_after_the_cool_off(api, user, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        token_post(api, user.username, "wrong-guess", addr=f"10.0.4.{i}")
    assert token_post(api, user.username, PASSWORD, addr="10.0.4.99").status_code == 429
    cool_off = int(settings.AXES_COOLOFF_TIME.total_seconds())
    with cache_clock_ahead(cool_off - 30):
        assert token_post(api, user.username, PASSWORD, addr="10.0.4.99").status_code == 429
    # that refused attempt started the cool-off again (Retry-After is always the whole cool-off)
    with cache_clock_ahead(cool_off + 30):
        assert token_post(api, user.username, PASSWORD, addr="10.0.4.99").status_code == 429
    with cache_clock_ahead(2 * cool_off + 31):
        res = token_post(api, user.username, PASSWORD, addr="10.0.4.99")
    assert res.status_code == 200 and res.json()["token"]


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(api, settings):
    limit = settings.AXES_FAILURE_LIMIT
    users = [UserFactory() for _ in range(limit + 1)]
    codes = [
        token_post(api, u.username, "wrong-guess", addr="10.0.5.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}").status_code
        for i, u in enumerate(users)
    ]
    assert codes[-1] == 429, "a client must not escape the per-address count by sending X-Forwarded-For"

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    codes = [
        token_post(api, u.username, "wrong-guess", addr="10.0.6.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
        for i, u in enumerate(users[:limit])
    ]
    assert codes == [400] * limit, "behind one trusted proxy, each forwarded address counts on its own"
    codes = [
        token_post(api, u.username, "wrong-guess", addr="10.0.6.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code
        for u in UserFactory.create_batch(limit)
    ]
    assert codes[-1] == 429


def test_token_endpoint_rate_limits_every_request_per_address(api, user, settings):
    rate = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth_token"].split("/")[0])
    codes = [token_post(api, user.username, PASSWORD, addr="10.0.7.1").status_code for _ in range(rate + 2)]
    assert codes == [200] * rate + [429, 429]
    res = token_post(api, user.username, PASSWORD, addr="10.0.7.1")
    assert res.status_code == 429 and res.json()["error"]["code"] == "throttled"
    assert 0 < int(res["Retry-After"]) <= 60
    assert token_post(api, user.username, PASSWORD, addr="10.0.7.2").status_code == 200


def test_login_form_shows_a_429_page_after_repeated_failures(user, settings):
    web = Client()
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        res = web.post("/login/", {"username": user.username, "password": "wrong-guess"})
        assert res.status_code == 200 and b"didn't match" in res.content
    res = web.post("/login/", {"username": user.username, "password": "wrong-guess"})
    assert res.status_code == 429
    assert res["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    assert res["Content-Type"].startswith("text/html")
    page = res.content.decode()
    assert "Too many failed logins" in page and "Try again in 15 minutes." in page and 'href="/login/"' in page
    res = web.post("/login/", {"username": user.username, "password": PASSWORD})
    assert res.status_code == 429 and "_auth_user_id" not in web.session
    # the API shares the count: the same account is locked there too
    assert (
        Client()
        .post(
            "/api/auth/token",
            {"username": user.username, "password": PASSWORD},
            content_type="application/json",
            REMOTE_ADDR="10.0.8.1",
        )
        .status_code
        == 429
    )


def test_admin_login_is_locked_out_too(settings):
    admin = UserFactory(is_staff=True, is_superuser=True)
    web = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        web.post("/admin/login/", {"username": admin.username, "password": "wrong-guess"})
    res = web.post("/admin/login/", {"username": admin.username, "password": PASSWORD})
    assert res.status_code == 429 and "Too many failed logins" in res.content.decode()


def test_a_success_under_the_limit_logs_in_normally(api, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 2):
        assert token_post(api, user.username, "wrong-guess").status_code == 400
    assert token_post(api, user.username, PASSWORD).status_code == 200


def test_staff_lift_a_lockout_with_the_documented_commands(api, user, settings):
    from django.core.management import call_command

    for i in range(settings.AXES_FAILURE_LIMIT):
        token_post(api, user.username, "wrong-guess", addr=f"10.0.9.{i}")
    assert token_post(api, user.username, PASSWORD, addr="10.0.9.200").status_code == 429
    call_command("axes_reset_username", f"user:{user.username}")
    assert token_post(api, user.username, PASSWORD, addr="10.0.9.200").status_code == 200

    for v in UserFactory.create_batch(settings.AXES_FAILURE_LIMIT):
        token_post(api, v.username, "wrong-guess", addr="10.0.9.250")
    assert token_post(api, user.username, PASSWORD, addr="10.0.9.250").status_code == 429
    call_command("axes_reset_ip", "10.0.9.250")
    assert token_post(api, user.username, PASSWORD, addr="10.0.9.250").status_code == 200


def test_oversized_credentials_are_a_400_before_any_password_check(api, user):
    res = token_post(api, "u" * 151, PASSWORD)
    assert res.status_code == 400 and "username" in res.json()["error"]["fields"]
    res = token_post(api, user.username, "p" * 4097)
    assert res.status_code == 400 and "password" in res.json()["error"]["fields"]
