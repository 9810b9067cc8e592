import gzip
import hashlib
import json
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from common.errors import ValidationFailed
from labeling.models import Export, ExportStatus
from labeling.selectors.export import cursor_decode, cursor_encode
from labeling.services import export as export_service
from labeling.services.export import export_request, exports_recover
from labeling.services.ground_truth import ground_truth_set
from labeling.tasks import export_build, export_sweep
from tests.conftest import client_for
from tests.labeling.factories import ItemFactory, UserFactory, make_items, resolve

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def stored_files(media):
    return sorted(p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file())


def request_export(project, user, **kw):
    export, created = export_request(project=project, actor=user, **kw)
    assert created
    return export


def file_bytes(export):
    with default_storage.open(export.file_name, "rb") as f:
        return f.read()


# --- cursors -----------------------------------------------------------------------------------


def test_cursor_round_trip_and_start():
    c = cursor_encode(project_id=12, seq=345)
    assert c.startswith("lc1_") and "345" not in c
    assert cursor_decode(c, project_id=12) == 345
    assert (
        cursor_decode("0", project_id=12)
        == cursor_decode(None, project_id=12)
        == cursor_decode(" ", project_id=12)
        == 0
    )
    assert cursor_encode(project_id=12, seq=345) == c  # deterministic: the same position, the same cursor
    with pytest.raises(ValidationFailed) as exc:
        cursor_decode(c, project_id=13)
    assert exc.value.code == "foreign_cursor"
    with pytest.raises(ValidationFailed) as exc:
        cursor_decode(c[:-2], project_id=12)
    assert exc.value.code == "bad_cursor"


# --- requesting --------------------------------------------------------------------------------


def test_request_fixes_the_range_and_enqueues_after_commit(
    project, user, django_capture_on_commit_callbacks, monkeypatch
):
    resolve(project, make_items(project, 5))
    sent = []
    monkeypatch.setattr(export_build, "delay", lambda *a, **kw: sent.append(a))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        export = request_export(project, user, format="csv", since=cursor_encode(project_id=project.pk, seq=2))
    assert (export.since_seq, export.until_seq, export.format, export.status) == (2, 5, "csv", ExportStatus.PENDING)
    assert sent == [] and len(callbacks) == 1  # nothing is enqueued before the commit
    callbacks[0]()
    assert sent == [(export.pk,)]


def test_same_range_again_returns_the_existing_export(project, user, django_capture_on_commit_callbacks):
    resolve(project, make_items(project, 3))
    first = request_export(project, user)
    again, created = export_request(project=project, actor=user)
    assert not created and again.pk == first.pk
    other_format = request_export(project, user, format="csv")
    assert other_format.pk != first.pk
    ground_truth_set(item=ItemFactory(project=project), label="pos", method="imported")
    newer = request_export(project, user)
    assert newer.until_seq == 4


@pytest.mark.parametrize(
    "kw,code",
    [
        ({"format": "xml"}, "invalid"),
        ({"since": "nope"}, "bad_cursor"),
    ],
)
def test_bad_requests_write_nothing(project, user, kw, code):
    with pytest.raises(ValidationFailed) as exc:
        export_request(project=project, actor=user, **kw)
    assert exc.value.code == code and not Export.objects.exists()


# --- building ----------------------------------------------------------------------------------


def test_snapshot_file_matches_the_stream_with_count_and_checksum(project, user, media):
    resolve(project, make_items(project, 30), annotators=[user.pk], model_version="m1")
    export = request_export(project, user, since=cursor_encode(project_id=project.pk, seq=4))
    export_build(export.pk)  # the task, called as a function
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE and export.row_count == 26 and export.attempts == 1
    data = file_bytes(export)
    assert export.byte_size == len(data) and export.sha256 == hashlib.sha256(data).hexdigest()
    streamed = b"".join(
        client_for(user)
        .get(f"/api/projects/{project.pk}/labels?format=jsonl&since={cursor_encode(project_id=project.pk, seq=4)}")
        .streaming_content
    )
    assert gzip.decompress(data) == streamed
    lines = gzip.decompress(data).decode().splitlines()
    assert json.loads(lines[-1]) == {"next_cursor": cursor_encode(project_id=project.pk, seq=30), "rows": 26}
    assert stored_files(media) == [export.file_name]


def test_snapshot_task_is_idempotent_one_file_same_checksum(project, user, media):
    resolve(project, make_items(project, 50))
    export = request_export(project, user, format="csv")
    export_build(export.pk)
    export_build(export.pk)  # a duplicate delivery: nothing to do
    export.refresh_from_db()
    first = (export.sha256, export.file_name, export.attempts)
    assert first[2] == 1 and stored_files(media) == [export.file_name]
    # A forced rebuild (e.g. the sweep after a worker died) writes the same bytes to the same name.
    Export.objects.filter(pk=export.pk).update(status=ExportStatus.PENDING)
    resolve(project, make_items(project, 5, prefix="later"))  # later changes are outside its range
    export_build(export.pk)
    export.refresh_from_db()
    assert (export.sha256, export.file_name) == first[:2] and export.attempts == 2
    assert stored_files(media) == [export.file_name]
    assert hashlib.sha256(file_bytes(export)).hexdigest() == export.sha256


def test_json_and_compact_snapshots(project, user):
    items = make_items(project, 10)
    resolve(project, items)
    resolve(project, items[:4], offset=1)  # 4 items change again
    export = request_export(project, user, format="json", compact=True)
    export_build(export.pk)
    export.refresh_from_db()
    doc = json.loads(gzip.decompress(file_bytes(export)))
    assert export.row_count == 10 == len(doc["results"])
    assert [r["seq"] for r in doc["results"]] == list(range(5, 15))
    assert doc["next_cursor"] == cursor_encode(project_id=project.pk, seq=14) and doc["has_more"] is False


def test_a_failed_build_is_recorded_then_a_retry_succeeds(project, user, monkeypatch, media):
    resolve(project, make_items(project, 3))
    export = request_export(project, user)

    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(default_storage, "save", broken)
    with pytest.raises(OSError):
        export_build(export.pk)
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and "disk full" in export.error
    monkeypatch.undo()
    export_build(export.pk)
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE and export.error == "" and export.row_count == 3
    assert stored_files(media) == [export.file_name]


def test_a_running_build_is_left_alone_unless_stale_and_the_sweep_finds_lost_ones(project, user, monkeypatch):
    resolve(project, make_items(project, 2))
    export = request_export(project, user)
    now = timezone.now()
    Export.objects.filter(pk=export.pk).update(status=ExportStatus.RUNNING, started_at=now)
    export_build(export.pk)
    assert Export.objects.get(pk=export.pk).status == ExportStatus.RUNNING  # someone else is on it
    sent = []
    monkeypatch.setattr(export_build, "delay", lambda export_id: sent.append(export_id))
    assert exports_recover() == {"requeued": 0, "failed": 0, "resent": 0} and sent == []
    Export.objects.filter(pk=export.pk).update(started_at=now - timedelta(hours=1))  # its worker died
    lost = request_export(project, user, format="csv")
    Export.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=10))
    assert export_sweep() == {"requeued": 1, "failed": 0, "resent": 1} and sorted(sent) == sorted([export.pk, lost.pk])
    assert Export.objects.get(pk=export.pk).status == ExportStatus.PENDING
    export_build(export.pk)
    assert Export.objects.get(pk=export.pk).status == ExportStatus.DONE


def test_a_build_that_lost_its_claim_does_not_record_its_result(
    project, user, media, monkeypatch, django_capture_on_commit_callbacks
):
    resolve(project, make_items(project, 3))
    export = request_export(project, user)
    gone = request_export(project, user, format="csv")
    real_write = export_service._write_gzip

    def contested_write(exp, out):
        if exp.pk == export.pk:  # while this worker writes, another one takes the export over
            Export.objects.filter(pk=exp.pk).update(attempts=exp.attempts + 1, started_at=timezone.now())
        else:  # ... or the export is deleted
            Export.objects.filter(pk=exp.pk).delete()
        return real_write(exp, out)

    monkeypatch.setattr(export_service, "_write_gzip", contested_write)
    with django_capture_on_commit_callbacks(execute=True):
        export_build(export.pk)
        export_build(gone.pk)
    export.refresh_from_db()
    assert export.status == ExportStatus.RUNNING and export.file_name == "" and export.sha256 == ""
    # Its file has the export's own name and the same bytes the new owner writes: kept; the deleted one's: gone.
    assert stored_files(media) == [export_service.export_file_name(export)]
    monkeypatch.undo()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Export.objects.filter(pk=export.pk).update(started_at=an_hour_ago, heartbeat_at=an_hour_ago)  # its owner died
    export_build(export.pk)
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE and stored_files(media) == [export.file_name]


# --- API ---------------------------------------------------------------------------------------


def test_export_api_202_poll_download(project, user, django_capture_on_commit_callbacks):
    resolve(project, make_items(project, 12))
    c = client_for(user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        res = c.post(f"/api/projects/{project.pk}/exports", {"format": "jsonl", "since": "0"}, format="json")
    assert res.status_code == 202, res.json()
    body = res.json()
    assert res["Location"] == f"/api/exports/{body['id']}" and len(callbacks) == 1
    assert body["status"] == "pending" and body["download_url"] is None and body["since_cursor"] == "0"
    assert body["next_cursor"] == cursor_encode(project_id=project.pk, seq=12)
    assert c.get(f"/api/exports/{body['id']}/download").status_code == 409
    export_build(body["id"])
    detail = c.get(f"/api/exports/{body['id']}").json()
    assert detail["status"] == "done" and detail["row_count"] == 12 and len(detail["sha256"]) == 64
    assert detail["download_url"] == f"http://testserver/api/exports/{body['id']}/download"
    dl = c.get(f"/api/exports/{body['id']}/download")
    assert dl.status_code == 200 and dl["Content-Type"] == "application/gzip"
    assert "attachment" in dl["Content-Disposition"] and dl["X-Content-SHA256"] == detail["sha256"]
    data = b"".join(dl.streaming_content)
    assert hashlib.sha256(data).hexdigest() == detail["sha256"] and len(gzip.decompress(data).splitlines()) == 13
    listed = c.get(f"/api/projects/{project.pk}/exports").json()
    assert [e["id"] for e in listed["results"]] == [body["id"]]
    again = c.post(f"/api/projects/{project.pk}/exports", {"format": "jsonl"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]


@pytest.mark.parametrize(
    "body,field", [({"format": "xml"}, "format"), ({"since": "bad"}, "since"), ({"compact": "perhaps"}, "compact")]
)
def test_export_api_bad_input_400_nothing_written(project, user, body, field):
    res = client_for(user).post(f"/api/projects/{project.pk}/exports", body, format="json")
    assert res.status_code == 400 and field in res.json()["error"]["fields"]
    assert not Export.objects.exists()


def test_export_api_permissions(project, user):
    from labeling.models import Role
    from tests.labeling.factories import add_member

    resolve(project, make_items(project, 2))
    export = request_export(project, user)
    export_build(export.pk)
    annotator = add_member(project, role=Role.ANNOTATOR)
    stranger = UserFactory()
    for who, code in ((annotator, 403), (stranger, 404)):
        c = client_for(who)
        assert c.get(f"/api/projects/{project.pk}/exports").status_code == code
        assert c.post(f"/api/projects/{project.pk}/exports", {}, format="json").status_code == code
        assert c.get(f"/api/exports/{export.pk}").status_code == code
        assert c.get(f"/api/exports/{export.pk}/download").status_code == code
    assert client_for(user).get("/api/exports/999999").status_code == 404
