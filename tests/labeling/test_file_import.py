"""Importing items from a file: default mapping, bad rows reported while good rows are stored,
idempotent re-import, progress numbers, formats, the task in-process."""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from common.errors import Conflict, ValidationFailed
from labeling.models import ImportStatus, Item, Prediction
from labeling.services.file_formats import mapping_default
from labeling.services.file_import import (
    import_create,
    import_map,
    import_run,
    import_start,
    rejections_csv_lines,
)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def upload(name, text):
    return SimpleUploadedFile(name, text.encode(), content_type="application/octet-stream")


CSV = (
    "id,text,channel,priority,prediction,model_version,prob_pos,prob_neg,prob_neu,predicted_at\n"
    "a1,great,web,2,pos,v1,0.8,0.1,0.1,2026-11-01T10:00:00Z\n"
    "a2,awful,app,,neg,v1,0.1,0.8,0.1,2026-11-02\n"
    "a3,meh,web,x,neu,v1,0.2,0.2,0.6,\n"  # bad priority
    "a4,odd,web,1,cat,v1,,,,\n"  # unknown label
    ",no id,web,1,,,,,,\n"  # no external id
    "a6,plain,app,0,,,,,,\n"
)


def test_mapping_defaults_by_column_name():
    cols = ["ID", "Text", "channel", "Priority", "predicted_label", "model", "prob_pos", "prob_neg", "prob_neu", "ts"]
    m = mapping_default(columns=cols, label_keys=["pos", "neg", "neu"])
    assert m["external_id"] == "ID" and m["text"] == "Text" and m["priority"] == "Priority"
    assert m["label"] == "predicted_label" and m["model_version"] == "model"
    assert m["prob_columns"] == {"pos": "prob_pos", "neg": "prob_neg", "neu": "prob_neu"}
    assert m["probabilities"] is None and m["predicted_at"] is None
    assert m["payload"] == ["channel", "ts"]
    m = mapping_default(columns=["external_id", "body", "probabilities", "prob_pos"], label_keys=["pos", "neg"])
    assert m["probabilities"] == "probabilities" and m["prob_columns"] == {} and m["payload"] == ["prob_pos"]


def test_bad_rows_are_reported_with_reasons_and_good_rows_stored(project, user, media):
    job = import_create(project=project, actor=user, upload=upload("items.csv", CSV))
    assert job.format == "csv" and job.status == ImportStatus.UPLOADED
    assert job.columns[:3] == ["id", "text", "channel"] and len(job.preview) == 6
    assert job.preview[0]["_row"] == 1 and job.preview[0]["text"] == "great"
    job = import_start(job=job)
    assert job.status == ImportStatus.PENDING
    job = import_run(job_id=job.pk, batch_rows=4)
    assert job.status == ImportStatus.DONE and job.percent == 100
    assert (job.rows_read, job.created, job.updated, job.unchanged, job.rejected) == (6, 3, 0, 0, 3)
    items = {i.external_id: i for i in Item.objects.filter(project=project)}
    assert sorted(items) == ["a1", "a2", "a6"]
    assert items["a1"].payload == {"channel": "web", "text": "great"} and items["a1"].priority == 2
    p = Prediction.objects.get(item=items["a1"])
    assert p.label == "pos" and p.probabilities == {"pos": 0.8, "neg": 0.1, "neu": 0.1}
    assert p.predicted_at.isoformat().startswith("2026-11-01T10:00")
    rejected = list(csv.reader(io.StringIO("".join(rejections_csv_lines(job=job)))))
    assert rejected[0] == ["row", "external_id", "reason"]
    assert [r[:2] for r in rejected[1:]] == [["3", "a3"], ["4", "a4"], ["5", ""]]
    assert "priority" in rejected[1][2] and "'cat'" in rejected[2][2] and "external_id" in rejected[3][2]


def test_re_import_is_idempotent_and_counts_unchanged(project, user, media):
    for expected in [(3, 0, 0, 3), (0, 0, 3, 3)]:
        job = import_start(job=import_create(project=project, actor=user, upload=upload("items.csv", CSV)))
        job = import_run(job_id=job.pk)
        assert (job.created, job.updated, job.unchanged, job.rejected) == expected
    assert Item.objects.filter(project=project).count() == 3
    # Running a finished job again changes nothing.
    assert import_run(job_id=job.pk).unchanged == 3


def test_json_lines_and_json_array_with_a_probabilities_object(project, user, media):
    rows = [
        {
            "external_id": "j1",
            "text": "hi",
            "meta": {"k": 1},
            "label": "pos",
            "model_version": "m",
            "probabilities": {"pos": 0.6, "neg": 0.3, "neu": 0.1},
            "predicted_at": "2026-11-03T00:00:00Z",
        },
        {"external_id": 2, "text": "yo"},
        [1, 2],
    ]
    jsonl = "\n".join(json.dumps(r) for r in rows) + "\n{broken\n"
    job = import_run(
        job_id=import_start(job=import_create(project=project, actor=user, upload=upload("a.jsonl", jsonl))).pk
    )
    assert (job.created, job.rejected) == (2, 2)
    assert Item.objects.get(project=project, external_id="j1").payload == {"meta": {"k": 1}, "text": "hi"}
    assert Prediction.objects.get(item__external_id="j1").probabilities["pos"] == 0.6
    job = import_create(project=project, actor=user, upload=upload("b.json", json.dumps(rows[:2])))
    assert job.format == "json"
    job = import_run(job_id=import_start(job=job).pk)
    assert (job.created, job.unchanged, job.rejected) == (0, 2, 0)


def test_a_mapping_is_checked_and_fixed_once_started(project, user, media):
    job = import_create(project=project, actor=user, upload=upload("items.csv", CSV))
    with pytest.raises(ValidationFailed) as err:
        import_map(job=job, mapping={**job.mapping, "external_id": "nope"})
    assert "mapping.external_id" in err.value.fields
    with pytest.raises(ValidationFailed):
        import_map(job=job, mapping={**job.mapping, "prob_columns": {"pos": "prob_pos"}})
    job = import_map(job=job, mapping={**job.mapping, "payload": [], "label": None})
    job = import_run(job_id=import_start(job=job).pk)
    assert job.rejected == 2  # the bad priority and the missing id; no prediction read
    assert Item.objects.get(project=project, external_id="a1").payload == {"text": "great"}
    with pytest.raises(Conflict):
        import_map(job=job, mapping=job.mapping)


def test_unreadable_files_are_refused_and_nothing_stored(project, user, media):
    for name, text in [("e.csv", ""), ("h.csv", "a,a\n1,2\n"), ("x.json", '{"a": 1}'), ("y.json", "[1,")]:
        with pytest.raises(ValidationFailed):
            import_create(project=project, actor=user, upload=upload(name, text))
    assert not list(media.rglob("*.*"))


def test_the_task_runs_in_process(project, user, media, eager_celery, django_capture_on_commit_callbacks):
    job = import_create(project=project, actor=user, upload=upload("items.csv", CSV))
    with django_capture_on_commit_callbacks(execute=True):
        import_start(job=job)
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and job.created == 3


def test_nul_characters_and_deep_json_are_rejected_rows_not_errors(project, user, media):
    text = 'id,text\nn1,"a\x00b"\nn2,fine\n'
    job = import_run(
        job_id=import_start(job=import_create(project=project, actor=user, upload=upload("n.csv", text))).pk
    )
    assert (job.created, job.rejected) == (1, 1)
    deep = "[" * 5000 + "]" * 5000
    jsonl = '{"id": "d1", "text": "x"}\n{"id": "d2", "text": "\\u0000"}\n' + deep + "\n"
    job = import_run(
        job_id=import_start(job=import_create(project=project, actor=user, upload=upload("d.jsonl", jsonl))).pk
    )
    assert (job.created, job.rejected) == (1, 2)
    with pytest.raises(ValidationFailed):
        import_create(project=project, actor=user, upload=upload("h.csv", "a\x00,b\n1,2\n"))
