"""The channels API: managers create, read, change, delete channels, rotate the secret (shown once),
send a test and read the delivery log; bad input is a 400 that names the field and writes nothing;
other roles get 403, outsiders 404, in the one error shape."""

import pytest

from alerts.models import Channel, Delivery, DeliveryStatus, Event
from alerts.services.delivery import delivery_attempt
from labeling.models import Role
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def url(project, *parts):
    return "/".join([f"/api/projects/{project.pk}/channels", *map(str, parts)])


def create(client, project, **body):
    return client.post(url(project), body, format="json")


def hook(client, project, name="ops", target="https://hooks.example.com/loupe"):
    res = create(client, project, name=name, kind="webhook", url=target)
    assert res.status_code == 201, res.json()
    return res.json()


def test_create_shows_the_secret_once_and_reads_never_do(user, project):
    c = client_for(user)
    made = hook(c, project)
    channel = Channel.objects.get(pk=made["id"])
    assert made["secret"] == channel.secret and len(made["secret"]) >= 32
    assert made["kind"] == "webhook" and made["enabled"] and made["created_by"] == user.username
    assert made["target"] == "https://hooks.example.com/loupe" and made["last_delivery"] is None

    listed = c.get(url(project))
    assert listed.status_code == 200
    (row,) = listed.json()
    assert "secret" not in row and row["id"] == channel.pk
    assert channel.secret not in listed.content.decode()
    detail = c.get(url(project, channel.pk))
    assert detail.status_code == 200 and "secret" not in detail.json()

    rotated = c.post(url(project, channel.pk, "rotate-secret"))
    assert rotated.status_code == 200
    channel.refresh_from_db()
    assert rotated.json()["secret"] == channel.secret != made["secret"]


def test_each_kind_is_created_with_its_own_fields(user, project):
    c = client_for(user)
    mail = create(c, project, name="mail", kind="email", emails=["a@example.com", " b@example.com", "A@example.com"])
    assert mail.status_code == 201, mail.json()
    assert mail.json()["emails"] == ["a@example.com", "b@example.com"] and mail.json()["url"] == ""
    members = create(c, project, name="members", kind="email", to_members=True)
    assert members.status_code == 201 and members.json()["target"] == "the project's members"
    chat = create(c, project, name="slack", kind="chat", url="slack://TokenA/TokenB/TokenC")
    assert chat.status_code == 201, chat.json()
    assert chat.json()["target"] == "slack://…"  # the tokens are not repeated in the target


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "webhook"}, "url"),
        ({"kind": "webhook", "url": "ftp://example.com/x"}, "url"),
        ({"kind": "webhook", "url": "example.com/hook"}, "url"),
        ({"kind": "webhook", "url": "https://user:pw@example.com/hook"}, "url"),
        ({"kind": "webhook", "url": "https://example.com/" + "x" * 1000}, "url"),
        ({"kind": "email"}, "emails"),
        ({"kind": "email", "emails": ["not an address"]}, "emails"),
        ({"kind": "email", "emails": ["ok@example.com", "@example.com"], "to_members": True}, "emails"),
        ({"kind": "email", "emails": "ok@example.com"}, "emails"),
        ({"kind": "chat"}, "url"),
        ({"kind": "chat", "url": "nosuchservice://token"}, "url"),
        ({"kind": "chat", "url": "https://hooks.example.com"}, "url"),
        ({"kind": "pager", "url": "https://example.com"}, "kind"),
        ({"kind": "webhook", "url": "https://example.com", "secret": "mine"}, "secret"),
        ({"kind": "webhook", "url": "https://example.com", "to_members": "yes"}, "to_members"),
        ({"kind": "webhook", "url": "https://example.com", "name": ""}, "name"),
        ({"kind": "webhook", "url": "https://example.com", "name": "n" * 101}, "name"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_written(user, project, body, field):
    res = create(client_for(user), project, **{"name": "x", **body})
    assert res.status_code == 400, res.json()
    error = res.json()["error"]
    assert error["code"] in ("invalid", "unknown_parameter") and field in error["fields"], error
    assert error["message"]
    assert not Channel.objects.exists()


def test_a_taken_name_is_a_409(user, project):
    c = client_for(user)
    hook(c, project, name="ops")
    res = create(c, project, name="ops", kind="email", emails=["a@example.com"])
    assert res.status_code == 409 and res.json()["error"]["code"] == "channel_exists"
    assert Channel.objects.count() == 1


def test_patch_changes_what_it_names_and_checks_the_whole(user, project):
    c = client_for(user)
    made = hook(c, project)
    res = c.patch(url(project, made["id"]), {"name": "primary", "url": "http://10.0.0.5:8080/in"}, format="json")
    assert res.status_code == 200, res.json()
    assert res.json()["name"] == "primary" and res.json()["url"] == "http://10.0.0.5:8080/in"

    bad = c.patch(url(project, made["id"]), {"url": "mailto:x@example.com"}, format="json")
    assert bad.status_code == 400 and "url" in bad.json()["error"]["fields"]
    assert c.patch(url(project, made["id"]), {"kind": "email"}, format="json").status_code == 400
    assert Channel.objects.get(pk=made["id"]).url == "http://10.0.0.5:8080/in"

    off = c.patch(url(project, made["id"]), {"enabled": False}, format="json")
    assert off.status_code == 200 and not off.json()["enabled"]
    assert off.json()["disabled_reason"] == f"Disabled by {user.username}."
    Channel.objects.filter(pk=made["id"]).update(consecutive_failures=5)
    on = c.patch(url(project, made["id"]), {"enabled": True}, format="json")
    assert on.json()["enabled"] and on.json()["consecutive_failures"] == 0 and on.json()["disabled_reason"] == ""

    other = hook(c, project, name="other")
    taken = c.patch(url(project, other["id"]), {"name": "primary"}, format="json")
    assert taken.status_code == 409


def test_delete_removes_the_channel_and_its_log(user, project):
    c = client_for(user)
    made = hook(c, project)
    c.post(url(project, made["id"], "test"))
    assert c.delete(url(project, made["id"])).status_code == 204
    assert not Channel.objects.exists() and not Delivery.objects.exists()
    gone = c.get(url(project, made["id"]))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_send_a_test_then_read_it_in_the_delivery_log(user, project, receiver, django_capture_on_commit_callbacks):
    c = client_for(user)
    made = hook(c, project, target=receiver.url)
    with django_capture_on_commit_callbacks() as callbacks:
        res = c.post(url(project, made["id"], "test"))
    assert res.status_code == 202, res.json()
    sent = res.json()
    assert sent["status"] == "pending" and sent["event"] == "alert.test" and sent["attempts"] == 0
    assert sent["log"] == [] and user.username in sent["subject"]
    assert len(callbacks) == 1  # the delivery is enqueued after commit
    (event,) = Event.objects.filter(type="alert.test")
    assert event.data == {"channel_id": made["id"]}

    delivery_attempt(sent["id"])
    log = c.get(url(project, made["id"], "deliveries"))
    assert log.status_code == 200
    (row,) = log.json()["results"]
    assert row["id"] == sent["id"] and row["status"] == "delivered" and row["last_status_code"] == 200
    assert [a["status_code"] for a in row["log"]] == [200]
    ((_, headers, _),) = receiver.requests
    assert headers["X-Loupe-Event"] == "alert.test" and headers["X-Loupe-Delivery"] == sent["idempotency_key"]
    listed = c.get(url(project)).json()[0]["last_delivery"]
    assert listed["id"] == sent["id"] and listed["status"] == "delivered" and listed["status_code"] == 200


def test_the_log_shows_failed_attempts_with_their_codes(user, project):
    from tests.alerts.conftest import Receiver

    receiver = Receiver(fail_first=2, fail_status=502)
    try:
        c = client_for(user)
        made = hook(c, project, target=receiver.url)
        sent = c.post(url(project, made["id"], "test")).json()
        for _ in range(3):
            delivery_attempt(sent["id"])
            Delivery.objects.filter(pk=sent["id"]).update(next_attempt_at=None)
        (row,) = c.get(url(project, made["id"], "deliveries")).json()["results"]
        assert row["status"] == DeliveryStatus.DELIVERED and row["attempts"] == 3
        assert [a["status_code"] for a in row["log"]] == [502, 502, 200]
        assert "receiver says no" in row["log"][0]["error"]
    finally:
        receiver.close()


def test_a_disabled_channel_refuses_a_test_with_409(user, project):
    c = client_for(user)
    made = hook(c, project)
    c.patch(url(project, made["id"]), {"enabled": False}, format="json")
    res = c.post(url(project, made["id"], "test"))
    assert res.status_code == 409 and res.json()["error"]["code"] == "channel_disabled"
    assert not Delivery.objects.exists()


def test_the_log_pages_newest_first(user, project):
    c = client_for(user)
    made = hook(c, project)
    ids = [c.post(url(project, made["id"], "test")).json()["id"] for _ in range(3)]
    first = c.get(url(project, made["id"], "deliveries") + "?page_size=2").json()
    assert [d["id"] for d in first["results"]] == ids[::-1][:2] and first["next"]
    assert c.get(url(project, made["id"], "deliveries") + "?page_size=0").status_code == 400


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER])
def test_members_who_do_not_manage_get_403(user, project, role):
    made = hook(client_for(user), project)
    member = client_for(add_member(project, role=role))
    for method, path in [
        ("get", url(project)),
        ("post", url(project)),
        ("get", url(project, made["id"])),
        ("patch", url(project, made["id"])),
        ("delete", url(project, made["id"])),
        ("post", url(project, made["id"], "test")),
        ("post", url(project, made["id"], "rotate-secret")),
        ("get", url(project, made["id"], "deliveries")),
    ]:
        res = getattr(member, method)(path, {}, format="json") if method != "get" else member.get(path)
        assert res.status_code == 403, (method, path)
        assert res.json()["error"]["code"] == "forbidden" and "secret" not in res.content.decode()
    assert Channel.objects.get(pk=made["id"]).name == "ops" and not Delivery.objects.exists()


def test_outsiders_get_404_and_channels_stay_in_their_project(user, project, api):
    made = hook(client_for(user), project)
    outsider = client_for(UserFactory())
    assert outsider.get(url(project)).status_code == 404
    assert outsider.get(url(project, made["id"])).status_code == 404
    assert api.get(url(project)).status_code in (401, 403)

    elsewhere = ProjectFactory(creator=user)  # the same manager, another project
    c = client_for(user)
    assert c.get(url(elsewhere, made["id"])).status_code == 404
    assert c.post(url(elsewhere, made["id"], "test")).status_code == 404
    assert c.get(url(elsewhere)).json() == []
    staff = client_for(UserFactory(is_staff=True))
    assert staff.get(url(project, made["id"])).status_code == 200


def test_the_list_reads_in_a_fixed_number_of_queries(user, project, django_assert_max_num_queries):
    c = client_for(user)
    for n in range(6):
        made = hook(c, project, name=f"hook {n}")
        c.post(url(project, made["id"], "test"))
    with django_assert_max_num_queries(6):
        res = c.get(url(project))
    assert len(res.json()) == 6 and all(r["last_delivery"]["status"] == "pending" for r in res.json())
