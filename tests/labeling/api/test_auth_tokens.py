"""API tokens: a new expiring token per login, revocation, the end of every token at a password
change, and staff-made service tokens (long-lived, listed without their secret, revocable)."""

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import ApiToken
from labeling.services.accounts import token_create_service, token_issue_login, tokens_prune
from tests.conftest import client_for
from tests.labeling.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def login(user, password=PASSWORD):
    res = APIClient().post("/api/auth/token", {"username": user.username, "password": password}, format="json")
    assert res.status_code == 200, res.content
    return res.json()


def with_token(key):
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return c


def me_status(key):
    return with_token(key).get("/api/me").status_code


def clock_at(moment):
    return mock.patch("django.utils.timezone.now", return_value=moment)


def test_each_login_makes_a_new_token_with_an_expiry(user, settings):
    before = timezone.now()
    first, second = login(user), login(user)
    assert first["token"] != second["token"]
    assert me_status(first["token"]) == 200 and me_status(second["token"]) == 200
    expiry = timezone.datetime.fromisoformat(first["expiry"].replace("Z", "+00:00"))
    ttl = timedelta(seconds=settings.LOUPE_TOKEN_TTL)
    assert before + ttl <= expiry <= timezone.now() + ttl
    assert settings.LOUPE_TOKEN_TTL == 10 * 3600
    # only a hash is stored
    assert not ApiToken.objects.filter(digest=first["token"]).exists()
    assert ApiToken.objects.filter(user=user).count() == 2


def test_a_token_stops_working_at_its_expiry(user, settings):
    key = login(user)["token"]
    issued = timezone.now()
    ttl = timedelta(seconds=settings.LOUPE_TOKEN_TTL)
    with clock_at(issued + ttl - timedelta(minutes=1)):
        assert me_status(key) == 200
    with clock_at(issued + ttl + timedelta(minutes=1)):
        res = with_token(key).get("/api/me")
    assert res.status_code == 401 and res.json()["error"]["code"] == "authentication_failed"
    assert res["WWW-Authenticate"] == "Token"
    assert not ApiToken.objects.filter(user=user).exists()


def test_delete_revokes_the_token_used_and_only_that_one(user):
    a, b = login(user)["token"], login(user)["token"]
    res = with_token(a).delete("/api/auth/token")
    assert res.status_code == 204
    assert me_status(a) == 401 and me_status(b) == 200


def test_delete_without_a_token_is_a_400(user):
    web = Client()
    web.force_login(user)
    res = web.delete("/api/auth/token")
    assert res.status_code == 400 and res.json()["error"]["code"] == "no_token"
    assert APIClient().delete("/api/auth/token").status_code == 401


def test_delete_all_revokes_every_token_of_the_user_only(user):
    keys = [login(user)["token"] for _ in range(3)]
    _, service = token_create_service(user=user, name="cron", expires_in=None, actor=user)
    other = login(UserFactory())["token"]
    assert with_token(keys[0]).delete("/api/auth/tokens").status_code == 204
    assert [me_status(k) for k in keys + [service]] == [401] * 4
    assert me_status(other) == 200


@pytest.mark.parametrize("how", ["set_password", "raw_update", "admin_form"])
def test_a_password_change_ends_every_token(user, how):
    keys = [login(user)["token"], token_create_service(user=user, name="cron", expires_in=None, actor=user)[1]]
    other = login(UserFactory())["token"]
    if how == "set_password":
        user.set_password("another-long-passphrase")
        user.save()
    elif how == "raw_update":
        type(user).objects.filter(pk=user.pk).update(password=make_password("another-long-passphrase"))
    else:
        admin = Client()
        admin.force_login(UserFactory(is_staff=True, is_superuser=True))
        res = admin.post(
            f"/admin/auth/user/{user.pk}/password/",
            {"password1": "another-long-passphrase", "password2": "another-long-passphrase"},
        )
        assert res.status_code == 302, res.content
    for key in keys:
        res = with_token(key).get("/api/me")
        assert res.status_code == 401 and "password changed" in res.json()["error"]["message"]
    assert me_status(other) == 200
    assert not ApiToken.objects.filter(user=user).exists()
    # a login with the new password gets a working token
    assert me_status(login(user, "another-long-passphrase")["token"]) == 200


def test_saving_a_user_without_changing_the_password_keeps_its_tokens(user):
    key = login(user)["token"]
    user.email = "someone@example.com"
    user.save()
    assert me_status(key) == 200


@pytest.mark.parametrize(
    "header",
    [
        "Token abc",
        "Token " + "g" * 64,
        "Token " + "a" * 63,
        "Token " + "a" * 64 + "\x00",
        "Token " + "é" * 32,
        "Token a b",
    ],
)
def test_malformed_tokens_are_401(header):
    res = APIClient().get("/api/me", HTTP_AUTHORIZATION=header)
    assert res.status_code == 401 and res.json()["error"]["code"] == "authentication_failed"


def test_inactive_users_tokens_are_refused(user):
    key = login(user)["token"]
    user.is_active = False
    user.save()
    assert me_status(key) == 401


# --- service tokens (staff) -----------------------------------------------------------------------


def test_staff_create_a_long_lived_service_token_listed_without_its_secret(staff):
    bot = UserFactory(username="training-pipeline")
    staff_api = client_for(staff)
    res = staff_api.post(
        f"/api/users/{bot.username}/tokens", {"name": "nightly export", "expires_in": None}, format="json"
    )
    assert res.status_code == 201
    made = res.json()
    assert made["name"] == "nightly export" and made["expiry"] is None and made["created_by"] == staff.username
    key = made["token"]
    with clock_at(timezone.now() + timedelta(days=400)):
        assert me_status(key) == 200
    login(bot)  # a login token is not a service token: not listed
    listed = staff_api.get(f"/api/users/{bot.username}/tokens").json()
    assert listed == [{k: v for k, v in made.items() if k != "token"}]
    assert key not in str(listed)


def test_service_token_with_an_expiry(staff):
    bot = UserFactory()
    res = client_for(staff).post(
        f"/api/users/{bot.username}/tokens", {"name": "week", "expires_in": 7 * 86400}, format="json"
    )
    assert res.status_code == 201 and res.json()["expiry"] is not None
    with clock_at(timezone.now() + timedelta(days=8)):
        assert me_status(res.json()["token"]) == 401
        assert client_for(staff).get(f"/api/users/{bot.username}/tokens").json() == []


def test_staff_revoke_a_service_token(staff):
    bot = UserFactory()
    api = client_for(staff)
    keep = api.post(f"/api/users/{bot.username}/tokens", {"name": "keep"}, format="json").json()
    gone = api.post(f"/api/users/{bot.username}/tokens", {"name": "gone"}, format="json").json()
    assert api.delete(f"/api/users/{bot.username}/tokens/{gone['id']}").status_code == 204
    assert me_status(gone["token"]) == 401 and me_status(keep["token"]) == 200
    assert [t["name"] for t in api.get(f"/api/users/{bot.username}/tokens").json()] == ["keep"]
    res = api.delete(f"/api/users/{bot.username}/tokens/{gone['id']}")
    assert res.status_code == 404 and res.json()["error"]["code"] == "token_not_found"
    # a token id of another user is not found under this one
    other = UserFactory()
    res = api.delete(f"/api/users/{other.username}/tokens/{keep['id']}")
    assert res.status_code == 404 and me_status(keep["token"]) == 200


def test_service_tokens_are_staff_only(user):
    bot = UserFactory()
    _, key = token_create_service(user=bot, name="cron", expires_in=None, actor=bot)
    token_id = ApiToken.objects.get(user=bot).pk
    api = client_for(user)
    for res in (
        api.get(f"/api/users/{bot.username}/tokens"),
        api.post(f"/api/users/{bot.username}/tokens", {"name": "mine"}, format="json"),
        api.delete(f"/api/users/{bot.username}/tokens/{token_id}"),
        with_token(key).post(f"/api/users/{bot.username}/tokens", {"name": "self"}, format="json"),
    ):
        assert res.status_code == 403 and res.json()["error"]["code"] == "permission_denied"
    assert ApiToken.objects.filter(user=bot).count() == 1 and me_status(key) == 200
    assert APIClient().get(f"/api/users/{bot.username}/tokens").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "x", "expires_in": 0},
        {"name": "x", "expires_in": "soon"},
        {"name": "x", "expires_in": 10**12},
    ],
)
def test_bad_service_token_input_is_400_and_creates_nothing(staff, body):
    bot = UserFactory()
    res = client_for(staff).post(f"/api/users/{bot.username}/tokens", body, format="json")
    assert res.status_code == 400 and res.json()["error"]["code"] == "invalid" and res.json()["error"]["fields"]
    assert not ApiToken.objects.filter(user=bot).exists()


def test_unknown_user_is_404(staff):
    res = client_for(staff).get("/api/users/nobody-here/tokens")
    assert res.status_code == 404 and res.json()["error"]["code"] == "user_not_found"


# --- housekeeping and upgrade -----------------------------------------------------------------------


def test_prune_deletes_expired_and_password_ended_tokens_only(user):
    live, _ = token_issue_login(user=user)
    service, _ = token_create_service(user=user, name="cron", expires_in=None, actor=user)
    expired, _ = token_issue_login(user=user)
    ApiToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    changed = UserFactory()
    ended, _ = token_create_service(user=changed, name="cron", expires_in=None, actor=changed)
    changed.set_password("another-long-passphrase")
    changed.save()
    assert tokens_prune() == 2
    assert set(ApiToken.objects.values_list("pk", flat=True)) == {live.pk, service.pk}


def test_tokens_from_before_the_upgrade_keep_working_and_are_listed(staff):
    """The migration carries DRF's former tokens (clear keys) over as hashed service tokens."""
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("labeling.migrations.0022_api_token")
    bot = UserFactory()
    old_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp with time zone, user_id integer)"
        )
        cur.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", [old_key, timezone.now() - timedelta(days=90), bot.pk]
        )
    migration.carry_over_drf_tokens(apps, mock.Mock(connection=connection))
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM authtoken_token")
        assert cur.fetchone()[0] == 0, "the clear keys are gone"
    assert me_status(old_key) == 200
    listed = client_for(staff).get(f"/api/users/{bot.username}/tokens").json()
    assert len(listed) == 1 and listed[0]["expiry"] is None
    assert client_for(staff).delete(f"/api/users/{bot.username}/tokens/{listed[0]['id']}").status_code == 204
    assert me_status(old_key) == 401


def test_schema_documents_the_token_endpoints(user):
    schema = client_for(user).get("/api/schema", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert set(paths["/api/auth/token"]) >= {"post", "delete"}
    assert "429" in paths["/api/auth/token"]["post"]["responses"]
    assert "security" not in paths["/api/auth/token"]["post"]  # anonymous
    assert {"tokenAuth": []} in paths["/api/auth/token"]["delete"]["security"]
    assert "delete" in paths["/api/auth/tokens"]
    assert set(paths["/api/users/{username}/tokens"]) >= {"get", "post"}
    assert "delete" in paths["/api/users/{username}/tokens/{token_id}"]
    out = schema["components"]["schemas"]["TokenApiOutput"]["properties"]
    assert set(out) == {"token", "expiry"}
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    assert scheme["in"] == "header" and scheme["name"] == "Authorization" and '"Token"' in scheme["description"]


def test_rotating_the_secret_key_keeps_service_tokens_working(staff, settings):
    bot = UserFactory()
    key = client_for(staff).post(f"/api/users/{bot.username}/tokens", {"name": "cron"}, format="json").json()["token"]
    settings.SECRET_KEY = "another-secret-key-" + "z" * 40
    assert me_status(key) == 200
