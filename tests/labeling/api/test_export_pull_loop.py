"""The README's pull loop, run as written against a live server (real HTTP, real streaming)."""

import json
import re
from pathlib import Path

import pytest

from labeling.api import views_export
from labeling.services.accounts import token_create_service
from labeling.services.export import export_grant_add
from labeling.services.ground_truth import ground_truth_set
from tests.labeling.factories import ItemFactory, ProjectFactory, UserFactory, make_items, resolve

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_pull():
    text = README.read_text()
    match = re.search(r"<!-- pull-loop[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its pull-loop snippet"
    namespace = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)
    return namespace["pull"]


def test_readme_pull_loop_appends_each_change_once(live_server, tmp_path, monkeypatch):
    pull = readme_pull()
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    bot = UserFactory(username="training-bot")
    export_grant_add(project=project, username=bot.username, actor=manager)
    _, token = token_create_service(user=bot, name="training pipeline", expires_in=None, actor=manager)
    cursor_file, training = tmp_path / "labels.cursor", tmp_path / "labels.jsonl"

    def run():
        return pull(
            cursor_file=str(cursor_file),
            training_set=str(training),
            base=live_server.url,
            project=project.pk,
            token=token,
        )

    def rows():
        return [json.loads(line) for line in training.read_bytes().split(b"\n") if line]

    items = make_items(project, 30)
    resolve(project, items[:20])
    odd = ItemFactory(project=project, external_id='line\u2028separator\x85and, "quotes"')
    ground_truth_set(item=odd, label="pos", method="imported")
    assert run() == 21
    assert [r["seq"] for r in rows()] == list(range(1, 22))
    assert rows()[-1]["external_id"] == odd.external_id
    first_cursor = cursor_file.read_text()

    assert run() == 0 and cursor_file.read_text() == first_cursor  # nothing new: nothing appended

    resolve(project, items[20:])
    resolve(project, items[:3], offset=1)  # three items relabeled
    assert run() == 13
    assert [r["seq"] for r in rows()] == list(range(1, 35))

    # A stream cut mid-way (the server fails after the first page): nothing appended, cursor kept.
    resolve(project, items[3:10], offset=2)
    real = views_export.encode_delta

    def cut(**kw):
        chunks = real(**kw)
        yield next(chunks)
        raise ConnectionResetError("the server went away mid-stream")

    monkeypatch.setattr(views_export, "encode_delta", cut)
    before, cursor_before = training.read_bytes(), cursor_file.read_text()
    with pytest.raises(RuntimeError, match="the stream was cut"):
        run()
    assert training.read_bytes() == before and cursor_file.read_text() == cursor_before
    monkeypatch.undo()
    assert run() == 7
    assert [r["seq"] for r in rows()] == list(range(1, 42))
