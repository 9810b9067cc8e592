"""The import API and pages: upload, mapping, start, progress, rejected rows as CSV; managers only."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from labeling.models import ImportJob, ImportStatus, Item, Role
from tests.conftest import client_for
from tests.labeling.factories import PASSWORD, UserFactory, add_member

CSV = "external_id,text,priority\na,first,1\nb,second,x\nc,third,\n"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def csv_file(text=CSV, name="items.csv"):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_upload_map_start_progress_and_rejected_csv(
    project, user, media, eager_celery, django_capture_on_commit_callbacks
):
    api = client_for(user)
    r = api.post(f"/api/projects/{project.pk}/imports", {"file": csv_file()}, format="multipart")
    assert r.status_code == 201, r.content
    job = r.json()
    assert job["status"] == "uploaded" and job["columns"] == ["external_id", "text", "priority"]
    assert job["mapping"]["external_id"] == "external_id" and job["mapping"]["text"] == "text"
    assert [row["external_id"] for row in job["preview"]] == ["a", "b", "c"]
    assert not Item.objects.filter(project=project).exists()

    r = api.patch(f"/api/imports/{job['id']}", {"mapping": {**job["mapping"], "priority": "nope"}}, format="json")
    assert r.status_code == 400 and "mapping.priority" in r.json()["error"]["fields"]
    r = api.patch(f"/api/imports/{job['id']}", {"mapping": {**job["mapping"], "payload": []}}, format="json")
    assert r.status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(f"/api/imports/{job['id']}/start", {}, format="json")
    assert r.status_code == 202
    r = api.get(f"/api/imports/{job['id']}")
    body = r.json()
    assert body["status"] == "done" and body["percent"] == 100
    assert (body["rows_read"], body["created"], body["rejected"]) == (3, 2, 1)
    r = api.get(f"/api/imports/{job['id']}/rejected.csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    lines = b"".join(r.streaming_content).decode().splitlines()
    assert lines[0] == "row,external_id,reason" and lines[1].startswith('2,b,"priority must be a number')
    # Started: the mapping is fixed, starting again changes nothing.
    assert api.patch(f"/api/imports/{job['id']}", {"mapping": job["mapping"]}, format="json").status_code == 409
    assert api.post(f"/api/imports/{job['id']}/start", {}, format="json").status_code == 202
    assert ImportJob.objects.get(pk=job["id"]).created == 2


def test_one_request_with_mapping_and_start(project, user, media, eager_celery, django_capture_on_commit_callbacks):
    mapping = {"external_id": "external_id", "payload": ["text"]}
    with django_capture_on_commit_callbacks(execute=True):
        r = client_for(user).post(
            f"/api/projects/{project.pk}/imports",
            {"file": csv_file(), "mapping": json.dumps(mapping), "start": "true"},
            format="multipart",
        )
    assert r.status_code == 201
    job = ImportJob.objects.get(pk=r.json()["id"])
    assert job.status == ImportStatus.DONE and job.created == 3  # priority not mapped: no bad row
    assert Item.objects.get(project=project, external_id="a").payload == {"text": "first"}


def test_bad_uploads_are_a_400_and_nothing_is_kept(project, user, media):
    api = client_for(user)
    url = f"/api/projects/{project.pk}/imports"
    r = api.post(url, {}, format="multipart")
    assert r.status_code == 400 and r.json()["error"]["fields"]["file"]
    r = api.post(url, {"file": csv_file("")}, format="multipart")
    assert r.status_code == 400
    r = api.post(url, {"file": csv_file(), "mapping": "{not json"}, format="multipart")
    assert r.status_code == 400
    r = api.post(url, {"file": csv_file(), "mapping": json.dumps({"external_id": "zz"})}, format="multipart")
    assert r.status_code == 400 and "mapping.external_id" in r.json()["error"]["fields"]
    r = api.post(url, {"file": csv_file()}, format="json")
    assert r.status_code == 415
    assert not ImportJob.objects.exists() and not list(media.rglob("*.*"))


def test_managers_only(project, user, media):
    job = ImportJob.objects.create(project=project, original_name="x.csv", format="csv", columns=["id"])
    for role, expected in [(Role.ANNOTATOR, 403), (Role.REVIEWER, 403), (None, 404)]:
        other = add_member(project, role=role) if role else UserFactory()
        api = client_for(other)
        assert (
            api.post(f"/api/projects/{project.pk}/imports", {"file": csv_file()}, format="multipart").status_code
            == expected
        )
        assert api.get(f"/api/imports/{job.pk}").status_code == 404 if role is None else expected
        assert api.get(f"/api/imports/{job.pk}/rejected.csv").status_code in (403, 404)
        web = Client()
        web.login(username=other.username, password=PASSWORD)
        assert web.get(f"/projects/{project.pk}/import").status_code == expected
    assert not Item.objects.filter(project=project).exists()


def test_pages_upload_map_and_summary(project, user, media, eager_celery, django_capture_on_commit_callbacks):
    web = Client()
    web.login(username=user.username, password=PASSWORD)
    r = web.get(f"/projects/{project.pk}/")
    assert f"/projects/{project.pk}/import" in r.content.decode()
    r = web.get(f"/projects/{project.pk}/import")
    assert r.status_code == 200 and b"No imports yet" in r.content
    r = web.post(f"/projects/{project.pk}/import", {"file": csv_file("")})
    assert r.status_code == 400 and b"The file is empty" in r.content
    r = web.post(f"/projects/{project.pk}/import", {"file": csv_file()})
    assert r.status_code == 302
    detail = r["Location"]
    r = web.get(detail)
    assert b'id="import-preview"' in r.content and b"second" in r.content
    r = web.post(detail, {"external_id": "", "text": "text"})
    assert r.status_code == 400 and b"external id" in r.content
    with django_capture_on_commit_callbacks(execute=True):
        r = web.post(
            detail, {"external_id": "external_id", "text": "text", "priority": "priority", "prob_mode": "object"}
        )
    assert r.status_code == 302
    r = web.get(detail)
    page = r.content.decode()
    assert 'id="import-summary"' in page and "priority must be a number" in page
    assert Item.objects.filter(project=project).count() == 2


@pytest.mark.parametrize(
    "name, content",
    [
        ("bin.csv", bytes(range(256)) * 4),
        ("latin.csv", "id,text\n1,caf\xe9\n".encode("latin-1")),
        ("nums.json", b"[1, 2, 3]"),
        ("nul.jsonl", b'{"id\\u0000": 1}\n'),
        ("deep.json", b"[" * 100_000),
        ("header.csv", b"id,text\n"),
        ("wide.csv", (",".join(f"c{i}" for i in range(600)) + "\n" + ",".join("1" * 600) + "\n").encode()),
        ("\x00evil\n.csv", b"id,text\n1,a\n"),
    ],
)
def test_any_file_is_a_400_or_a_job_never_a_500(project, user, media, name, content):
    r = client_for(user).post(
        f"/api/projects/{project.pk}/imports",
        {"file": SimpleUploadedFile(name, content, content_type="application/octet-stream")},
        format="multipart",
    )
    assert r.status_code in (201, 400), r.content
    if r.status_code == 400:
        assert r.json()["error"]["message"]
    else:
        assert "\x00" not in r.json()["original_name"]
