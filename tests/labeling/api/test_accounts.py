import pytest

from tests.conftest import client_for
from tests.labeling.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_token_for_valid_credentials_and_it_authenticates(api, user):
    res = api.post("/api/auth/token", {"username": user.username, "password": PASSWORD}, format="json")
    assert res.status_code == 200
    token = res.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    me = api.get("/api/me")
    assert me.status_code == 200 and me.json()["username"] == user.username


@pytest.mark.parametrize("which", ["password", "username"])
def test_wrong_credentials_are_400_without_saying_which(api, user, which):
    body = {"username": user.username, "password": PASSWORD, which: "nope-nope-nope"}
    res = api.post("/api/auth/token", body, format="json")
    assert res.status_code == 400
    err = res.json()["error"]
    assert err["code"] == "invalid_credentials"
    assert "password" not in err["message"].lower().replace("provided credentials", "")
    assert "fields" not in err


def test_unauthenticated_api_gets_401_in_error_shape(api):
    res = api.get("/api/projects")
    assert res.status_code == 401
    assert res.json()["error"]["code"] == "not_authenticated"


def test_staff_creates_user(staff):
    res = client_for(staff).post("/api/users", {"username": "ann", "password": "s3cret-enough-pw"}, format="json")
    assert res.status_code == 201
    assert res.json()["username"] == "ann" and isinstance(res.json()["id"], int)


def test_duplicate_username_is_409(staff):
    UserFactory(username="ann")
    res = client_for(staff).post("/api/users", {"username": "ann", "password": "s3cret-enough-pw"}, format="json")
    assert res.status_code == 409 and res.json()["error"]["code"] == "username_taken"


def test_weak_password_is_400(staff):
    res = client_for(staff).post("/api/users", {"username": "bob", "password": "123"}, format="json")
    assert res.status_code == 400 and "password" in res.json()["error"]["fields"]


def test_non_staff_cannot_create_users(user):
    res = client_for(user).post("/api/users", {"username": "x", "password": "s3cret-enough-pw"}, format="json")
    assert res.status_code == 403
    assert res.json()["error"]["code"] == "permission_denied"


def test_unknown_api_path_is_404_in_error_shape(user):
    res = client_for(user).get("/api/no-such-thing")
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"


# --- password rules: Django's four default validators ------------------------------------------------


@pytest.mark.parametrize(
    "username,password,why",
    [
        ("annabelle", "annabelle1", "too similar to the username"),
        ("bob", "9038472615", "entirely numeric"),
        ("bob", "password123", "too common"),
        ("bob", "sh0rt!", "too short"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(staff, username, password, why):
    res = client_for(staff).post("/api/users", {"username": username, "password": password}, format="json")
    assert res.status_code == 400
    assert any(why in m for m in res.json()["error"]["fields"]["password"]), res.json()
    assert not UserFactory._meta.model.objects.filter(username=username).exists()


def test_password_similar_to_the_email_is_refused(staff):
    body = {"username": "ops", "email": "marguerite.dupont@example.com", "password": "margueritedupont"}
    res = client_for(staff).post("/api/users", body, format="json")
    assert res.status_code == 400 and "too similar" in res.json()["error"]["fields"]["password"][0]


def test_demo_and_test_passwords_pass_the_validators():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password

    from labeling.demo import DEMO_PASSWORD, DEMO_USERS

    User = get_user_model()
    # validate_password raises ValidationError for a password a validator refuses, else returns None.
    for username, _, _ in DEMO_USERS:
        assert validate_password(DEMO_PASSWORD, user=User(username=username)) is None
    assert validate_password(PASSWORD, user=User(username="user1")) is None
