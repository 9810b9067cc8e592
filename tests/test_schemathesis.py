"""Fuzz the API from its own OpenAPI schema: schemathesis (every check, every phase) against the app
served from this test on PostgreSQL with the demo data, once with a project manager's token and once
with an annotator's. Any 5xx, any response that breaks the schema (body, status code, content type,
headers), any request the schema forbids that is accepted fails the test.

Bounded and deterministic: a fixed seed, a few examples per operation, one request at a time.

One allowance, per operation and with its reason: schema-valid input may still be refused with 400
when the rule is about data the schema cannot know (a username that must exist, a cursor this
server issued, a label key of this project, a password strong enough...). Only those operations
may answer 400 to schema-valid data; everywhere else such a 400 is a failure (the schema lies)."""

import base64
import io
import json
import os
import subprocess
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests

from tests.conftest import require
from tests.labeling.factories import PASSWORD

pytestmark = pytest.mark.services

SEED = 20261207
MAX_EXAMPLES = 6

SEMANTIC_400 = {
    "auth_token": "wrong username or password",
    "users_create": "Django's password validators",
    "projects_create": "label keys and hotkeys must be unique within the project",
    "projects_update": "max_annotations_per_item must be at least annotations_per_item",
    "members_add": "the username must exist",
    "export_grants_add": "the username must exist",
    "labels_delta": "`since` must be a cursor this server issued",
    "exports_create": "`since` must be a cursor this server issued",
    "items_ingest": "rows are checked against the project (labels, model versions, timestamps)",
    "ground_truth_import": "rows are checked against the project's labels",
    "items_resolve": "the label must be one of the project's; appending to the guideline needs a note",
    "assignment_submit": "the label must be one of the project's",
    "feedback_delay": "model_version and source must be known in the project; until not before since",
    "bugs_list": "tags must exist; q follows the search grammar (known keys and values)",
    "bugs_report": "tags must exist; failures are checked against the project",
    "bugs_update": "tags must exist; the assignee must be a member; duplicate_of must be another bug",
    "bugs_resolve": "datasets must belong to the project; duplicate needs duplicate_of",
    "bugs_bulk": "exactly one of bugs and query; query follows the search grammar; the value must fit the action",
    "bugs_snooze": "until must be in the future",
    "datasets_create": "tags must exist; the name must be unique in the project",
    "datasets_update": "tags must exist",
    "dataset_versions_create": "external ids must be items with ground truth, bugs must be the project's, "
    "a search needs a text or a status; something to add or remove",
    "evaluations_create": "predictions are checked against the project's labels and datasets",
    "models_register": "the version must not be blank once trimmed",
    "models_promote": "the stage must differ from the model's current stage",
    "channels_create": "a channel's kind decides the fields it needs (an http(s) URL, addresses, an apprise URL)",
    "channels_update": "the channel is checked whole against its kind; the name must be unique in the project",
    "alert_rules_create": "channels must be the project's own",
    "alert_rules_update": "channels must be the project's own",
    "alert_rules_mute": "until must be in the future",
    "on_call_set": "members must be members of the project",
    "alerts_snooze": "until must be in the future; exactly one of until and occurrences",
    "imports_create": "the file must be readable CSV, JSON Lines or a JSON array; the mapping must name its columns",
    "imports_map": "the mapping must name columns of the uploaded file and the project's labels",
    "imports_start": "the mapping must name columns of the uploaded file and the project's labels",
    "items_list": "q must not be blank once trimmed; field.<name> names and values are checked",
    "items_bulk": "exactly one of ids and filters; set_priority needs a value; filters are the list's, checked alike; "
    "add_to_dataset belongs to the datasets API",
    "labels_create": "a hotkey must not be reserved (s, ?) and the key must be new in the project",
    "labels_update": "the name must not be blank once trimmed; the hotkey must not be reserved",
    "labels_merge": "the target must be another label of the project",
    "annotation_edit": "the label must be one of the project's",
    "item_comments_create": "the text must not be blank once trimmed",
    "evaluations_rerun": "datasets must be the project's own",
}


def _config(path):
    """schemathesis.toml: every check, with the semantic allowance above."""
    lines = [
        f"seed = {SEED}",
        "",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        "",
        # every method against every route is tests/labeling/api/test_error_shape.py's job
        "[phases.coverage]",
        'unexpected-methods = ["TRACE"]',
        "",
    ]
    for operation_id, why in sorted(SEMANTIC_400.items()):
        lines += [
            f"# {why}",
            "[[operations]]",
            f'include-operation-id = "{operation_id}"',
            'checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]',
            "",
        ]
    path.write_text("\n".join(lines))
    return path


# A schemathesis/hypothesis fault on CPython 3.11 while it describes a generation strategy (not an
# answer of this API): reported in the message, not counted.
TOOL_FAULTS = ("AST constructor recursion depth mismatch",)


def _summary(report_dir):
    """Each failed check once per (operation, check): the request and the answer, for the message;
    and whether the run finished."""
    out, seen, finished = [], set(), False
    for name in os.listdir(report_dir):
        if not name.endswith(".ndjson"):
            continue
        with open(os.path.join(report_dir, name)) as report:
            events = [json.loads(line) for line in report]
        for event in events:
            kind, body = next(iter(event.items()))
            finished = finished or kind == "EngineFinished"
            if kind == "NonFatalError" and not any(f in body["value"].get("message", "") for f in TOOL_FAULTS):
                out.append(f"ERROR {body.get('label')}: {body['value']}")
            if kind != "ScenarioFinished":
                continue
            rec = body["recorder"]
            for case_id, checks in (rec.get("checks") or {}).items():
                for check in checks:
                    if check["status"] != "failure" or (rec["label"], check["name"]) in seen:
                        continue
                    seen.add((rec["label"], check["name"]))
                    inter = (rec.get("interactions") or {}).get(case_id, {})
                    req, res = inter.get("request", {}), inter.get("response", {})
                    content = base64.b64decode((res.get("content") or {}).get("$base64", "")).decode("utf-8", "replace")
                    out.append(
                        f"{rec['label']} :: {check['name']}: {req.get('method')} {req.get('uri')} -> "
                        f"{res.get('status_code')} {content[:300]}"
                    )
    return out, finished


def _token(base, username, password):
    res = requests.post(f"{base}/api/auth/token", json={"username": username, "password": password}, timeout=30)
    assert res.status_code == 200, res.text
    return res.json()["token"]


@pytest.fixture
def fuzz_server(postgres_tx, eager_celery):
    """The demo project (items, predictions, annotations, a quality run, bugs, datasets) and a project
    manager who is not staff, served by a one-thread WSGI server: requests one at a time (a run that
    does not depend on timing) over one kept database connection (pytest's live_server opens one per
    request, which made the run twice as long)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connections

    from labeling.models import Project, Role
    from labeling.services.projects import member_add
    from tests.labeling.factories import UserFactory

    call_command("loupe_demo", items=60, stdout=io.StringIO())
    manager = UserFactory(username="fuzz-manager")
    member_add(project=Project.objects.get(), username=manager.username, role=Role.MANAGER)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    httpd = make_server("127.0.0.1", 0, WSGIHandler(), handler_class=QuietHandler)

    def serve():
        try:
            httpd.serve_forever(poll_interval=0.1)
        finally:
            connections.close_all()  # the server thread's connection, before the test database goes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=30)
    httpd.server_close()


@pytest.mark.parametrize("who", ["manager", "annotator"])
def test_schemathesis_finds_no_5xx_and_no_schema_violation(fuzz_server, tmp_path, who):
    require(os.path.exists(os.path.join(os.path.dirname(sys.executable), "st")), "schemathesis is not installed")
    from labeling.demo import DEMO_PASSWORD

    token = (
        _token(fuzz_server, "fuzz-manager", PASSWORD)
        if who == "manager"
        else _token(fuzz_server, "demo-annotator", DEMO_PASSWORD)
    )
    report_dir = tmp_path / "report"
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(_config(tmp_path / "schemathesis.toml")),
        "run",
        f"{fuzz_server}/api/schema",
        "--checks",
        "all",
        "--workers",
        "1",
        "--no-color",
        "--header",
        f"Authorization: Token {token}",
        "--report",
        "ndjson",
        "--report-dir",
        str(report_dir),
        "--request-timeout",
        "30",
        # How fast hypothesis makes examples depends on the machine's load, not on the API.
        "--suppress-health-check",
        "too_slow",
        # Logging out would end the fuzzer's own token (every call after it a 401):
        # tests/labeling/api/test_auth_tokens.py covers those two.
        "--exclude-operation-id",
        "auth_token_revoke",
        "--exclude-operation-id",
        "auth_tokens_revoke_all",
    ]
    run = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"}, cwd=tmp_path
    )  # schemathesis keeps a .schemathesis/ cache in its working directory
    problems, finished = _summary(report_dir)
    assert finished and not problems, "\n".join(problems) + "\n" + run.stdout[-3000:]
    assert "operations" in run.stdout and "Tested:" in run.stdout, run.stdout[-3000:]
