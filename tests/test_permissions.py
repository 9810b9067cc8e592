"""Who sees what: every API endpoint and web page, for every kind of caller, with the status each
one gets, and no label of an item an annotator may still be asked to label.

The table below IS the access policy, written as data: one row per (method, URL name), one status
per role in the order of ROLES. Adding a URL without adding its row fails `test_every_route_is_in_the_table`.

Blind labeling (labeling.selectors.blind): an annotator sees the labels (a model's prediction, an
expected label, ground truth, a consensus, probabilities) of an item only once the item is closed
for them: decided (resolved) and never to be served to them again (they held a lease on it).
Reviewers, managers and staff see every label. The world built here holds one item of each kind
for the annotator: `mine` (closed for them), `hidden` (resolved, never theirs: a quality run could
reopen it for them) and `open` (still in their queue). Each 2xx answer is scanned for a label next
to `hidden` or `open`.

Every request runs in a savepoint that is rolled back, so one world serves every row of a role.
"""

import json
import re
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver
from django.utils import timezone

from bugqueue.services.datasets import dataset_create, dataset_version_curate
from bugqueue.services.digest import digest_build
from bugqueue.services.evaluations import evaluation_run, predictions_parse
from bugqueue.services.report import bug_report
from labeling.models import ImportJob, Role
from labeling.services.annotations import annotation_submit
from labeling.services.export import export_grant_add, export_request
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.ingestion import items_ingest
from labeling.services.projects import LabelSpec, project_create
from labeling.services.quality.runs import quality_run_request
from labeling.services.queue.claim import assignment_claim_next
from labeling.services.registry import model_ensure
from tests.labeling.factories import UserFactory, add_member

ROLES = ("anon", "outsider", "annotator", "reviewer", "manager", "grant", "staff")
LABELS = ("kiwi", "mango", "plum")  # label keys no page shows for another reason
# Keys that carry a label (or a model's opinion) of an item, in any JSON answer.
LABEL_KEYS = {
    "label",
    "predicted_label",
    "expected_label",
    "predicted",
    "expected",
    "ground_truth",
    "consensus_label",
    "given_label",
    "probabilities",
    "prediction",
    "final_label",
    "previous_label",
}

# (method, url name, path, statuses in ROLES order). Bodies: {} for API writes, an empty form for
# page POSTs: a caller who may act gets a 400 (or the operation's answer on the built world),
# one who may not gets 401/403/404 first. Pages answer 302 (to the login) to the anonymous.
API = "api"
PAGE = "page"
TABLE = [
    # --- labeling API --------------------------------------------------------------------
    (API, "POST", "api-token", "/api/auth/token", "400 400 400 400 400 400 400"),
    (API, "POST", "api-users", "/api/users", "401 403 403 403 403 403 400"),
    # Logging out needs a token (a session answers 400); service tokens are staff business.
    (API, "DELETE", "api-token", "/api/auth/token", "401 400 400 400 400 400 400"),
    (API, "DELETE", "api-tokens", "/api/auth/tokens", "401 204 204 204 204 204 204"),
    (API, "GET", "api-user-tokens", "/api/users/{outsider}/tokens", "401 403 403 403 403 403 200"),
    (API, "POST", "api-user-tokens", "/api/users/{outsider}/tokens", "401 403 403 403 403 403 400"),
    (API, "DELETE", "api-user-token", "/api/users/{outsider}/tokens/999999", "401 403 403 403 403 403 404"),
    (API, "GET", "api-me", "/api/me", "401 200 200 200 200 200 200"),
    (API, "GET", "api-projects", "/api/projects", "401 200 200 200 200 200 200"),
    # Creating a project needs staff or the labeling.add_project permission (staff grant it).
    (API, "POST", "api-projects", "/api/projects", "401 403 403 403 403 403 400"),
    (API, "GET", "api-project", "/api/projects/{p}", "401 404 200 200 200 404 200"),
    (API, "PATCH", "api-project", "/api/projects/{p}", "401 404 403 403 200 404 200"),
    (API, "GET", "api-members", "/api/projects/{p}/members", "401 404 200 200 200 404 200"),
    (API, "POST", "api-members", "/api/projects/{p}/members", "401 404 403 403 400 404 400"),
    (API, "DELETE", "api-member", "/api/projects/{p}/members/{outsider}", "401 404 403 403 404 404 404"),
    (API, "GET", "api-items", "/api/projects/{p}/items", "401 404 200 200 200 404 200"),
    (API, "POST", "api-items", "/api/projects/{p}/items", "401 404 403 403 400 404 400"),
    (API, "POST", "api-items-bulk", "/api/projects/{p}/items/bulk", "401 404 403 403 400 404 400"),
    (API, "GET", "api-labels", "/api/projects/{p}/labels", "401 404 403 403 200 200 200"),
    (API, "POST", "api-labels", "/api/projects/{p}/labels", "401 404 403 403 400 404 400"),
    (API, "PATCH", "api-label", "/api/projects/{p}/labels/kiwi", "401 404 403 403 200 404 200"),
    (API, "POST", "api-label-retire", "/api/projects/{p}/labels/kiwi/retire", "401 404 403 403 200 404 200"),
    (API, "POST", "api-label-restore", "/api/projects/{p}/labels/kiwi/restore", "401 404 403 403 409 404 409"),
    (API, "POST", "api-label-merge", "/api/projects/{p}/labels/kiwi/merge", "401 404 403 403 400 404 400"),
    (API, "GET", "api-project-exports", "/api/projects/{p}/exports", "401 404 403 403 200 200 200"),
    (API, "POST", "api-project-exports", "/api/projects/{p}/exports", "401 404 403 403 200 200 200"),
    (API, "GET", "api-export", "/api/exports/{export}", "401 404 403 403 200 200 200"),
    (API, "GET", "api-export-download", "/api/exports/{export}/download", "401 404 403 403 409 409 409"),
    # Grants are the managers' business: a grantee reads none of them (the export page agrees).
    (API, "GET", "api-export-grants", "/api/projects/{p}/export-grants", "401 404 403 403 200 404 200"),
    (API, "POST", "api-export-grants", "/api/projects/{p}/export-grants", "401 404 403 403 400 404 400"),
    (API, "DELETE", "api-export-grant", "/api/projects/{p}/export-grants/{grantee}", "401 404 403 403 204 404 204"),
    # File imports are the managers' business, as ingestion is; the upload is multipart (a JSON body is a 415).
    (API, "POST", "api-project-imports", "/api/projects/{p}/imports", "401 404 403 403 415 404 415"),
    (API, "GET", "api-import", "/api/imports/{import}", "401 404 403 403 200 404 200"),
    (API, "PATCH", "api-import", "/api/imports/{import}", "401 404 403 403 400 404 400"),
    (API, "POST", "api-import-start", "/api/imports/{import}/start", "401 404 403 403 400 404 400"),
    (API, "GET", "api-import-rejected", "/api/imports/{import}/rejected.csv", "401 404 403 403 200 404 200"),
    (API, "POST", "api-ground-truth", "/api/projects/{p}/ground-truth", "401 404 403 403 400 404 400"),
    (API, "GET", "api-feedback-delay", "/api/projects/{p}/feedback-delay", "401 404 403 200 200 404 200"),
    (API, "POST", "api-queue-next", "/api/projects/{p}/queue/next", "401 404 200 200 200 404 200"),
    (API, "POST", "api-assignment-submit", "/api/assignments/{assignment}/submit", "401 404 400 404 404 404 404"),
    (API, "POST", "api-assignment-skip", "/api/assignments/{assignment}/skip", "401 404 409 404 404 404 404"),
    (API, "GET", "api-my-answers", "/api/projects/{p}/my-answers", "401 404 200 200 200 404 200"),
    (API, "GET", "api-my-remaining", "/api/projects/{p}/my-remaining", "401 404 200 200 200 404 200"),
    # Only its annotator may change an answer: everyone else is told it does not exist.
    (API, "POST", "api-annotation-edit", "/api/annotations/{annotation}/edit", "401 404 400 404 404 404 404"),
    (API, "GET", "api-annotations", "/api/projects/{p}/annotations", "401 404 403 403 200 404 200"),
    (API, "GET", "api-me-stats", "/api/me/stats?project={p}", "401 404 200 200 200 404 200"),
    (API, "GET", "api-quality-runs", "/api/projects/{p}/quality-runs", "401 404 403 200 200 404 200"),
    (API, "POST", "api-quality-runs", "/api/projects/{p}/quality-runs", "401 404 403 403 409 404 409"),
    (API, "GET", "api-quality-run", "/api/quality-runs/{run}", "401 404 403 200 200 404 200"),
    (API, "GET", "api-quality-run-items", "/api/quality-runs/{run}/items", "401 404 403 200 200 404 200"),
    (API, "GET", "api-quality-settings", "/api/projects/{p}/quality-settings", "401 404 403 200 200 404 200"),
    # An empty PATCH changes nothing: 200 with the settings as they are.
    (API, "PATCH", "api-quality-settings", "/api/projects/{p}/quality-settings", "401 404 403 403 200 404 200"),
    (API, "POST", "api-review-next", "/api/projects/{p}/review/next", "401 404 403 204 204 404 204"),
    (API, "POST", "api-review-skip", "/api/items/{hidden}/review/skip", "401 404 403 409 409 404 409"),
    (API, "POST", "api-item-resolve", "/api/items/{hidden}/resolve", "401 404 403 400 400 404 400"),
    # Comments: whoever may see the item reads and posts (an annotator on an item still open to them
    # reads only their own); only the author deletes (no comment exists here: 404).
    (API, "GET", "api-item-comments", "/api/items/{hidden}/comments", "401 404 200 200 200 404 200"),
    (API, "POST", "api-item-comments", "/api/items/{hidden}/comments", "401 404 400 400 400 404 400"),
    (API, "DELETE", "api-comment", "/api/comments/999999", "401 404 404 404 404 404 404"),
    (API, "GET", "api-me-mentions", "/api/me/mentions", "401 200 200 200 200 200 200"),
    (API, "GET", "api-annotators", "/api/projects/{p}/annotators", "401 404 403 200 200 404 200"),
    (API, "GET", "api-agreement", "/api/projects/{p}/agreement", "401 404 403 200 200 404 200"),
    # --- bug-queue API -------------------------------------------------------------------
    (API, "GET", "api-bugs", "/api/bugs", "401 200 200 200 200 200 200"),
    (API, "GET", "api-bugs", "/api/bugs?project={p}", "401 404 200 200 200 404 200"),
    (API, "POST", "api-bugs", "/api/bugs", "401 400 400 400 400 400 400"),
    (API, "GET", "api-bug", "/api/bugs/{bug}", "401 404 200 200 200 404 200"),
    (API, "PATCH", "api-bug", "/api/bugs/{bug}", "401 404 403 200 200 404 200"),
    (API, "POST", "api-bug-comments", "/api/bugs/{bug}/comments", "401 404 400 400 400 404 400"),
    (API, "POST", "api-bug-resolve", "/api/bugs/{bug}/resolve", "401 404 403 400 400 404 400"),
    # Merging is the managers' business: an empty body is a 400 before anything is looked up; the
    # world's bug is not merged (409 not_merged).
    (API, "POST", "api-bugs-merge", "/api/bugs/merge", "401 400 400 400 400 400 400"),
    (API, "POST", "api-bug-unmerge", "/api/bugs/{bug}/unmerge", "401 404 403 403 409 404 409"),
    (API, "GET", "api-triage", "/api/triage?project={p}", "401 404 200 200 200 404 200"),
    (API, "GET", "api-tags", "/api/tags", "401 200 200 200 200 200 200"),
    (API, "GET", "api-bug-settings", "/api/projects/{p}/bug-settings", "401 404 200 200 200 404 200"),
    (API, "PATCH", "api-bug-settings", "/api/projects/{p}/bug-settings", "401 404 403 403 200 404 200"),
    (API, "GET", "api-datasets", "/api/datasets?project={p}", "401 404 200 200 200 404 200"),
    (API, "POST", "api-datasets", "/api/datasets", "401 400 400 400 400 400 400"),
    (API, "GET", "api-dataset", "/api/datasets/{dataset}", "401 404 200 200 200 404 200"),
    # An empty PATCH changes nothing: 200 with the dataset as it is.
    (API, "PATCH", "api-dataset", "/api/datasets/{dataset}", "401 404 403 403 200 404 200"),
    (API, "GET", "api-dataset-item-search", "/api/datasets/{dataset}/item-search", "401 404 403 403 200 404 200"),
    (API, "GET", "api-dataset-versions", "/api/datasets/{dataset}/versions", "401 404 200 200 200 404 200"),
    (API, "POST", "api-dataset-versions", "/api/datasets/{dataset}/versions", "401 404 403 403 400 404 400"),
    (
        API,
        "GET",
        "api-dataset-version-items",
        "/api/datasets/{dataset}/versions/1/items",
        "401 404 200 200 200 404 200",
    ),
    (
        API,
        "GET",
        "api-dataset-version-items",
        "/api/datasets/{dataset}/versions/1/items?format=jsonl",
        "401 404 200 200 200 404 200",
    ),
    (
        API,
        "GET",
        "api-dataset-version-delta",
        "/api/datasets/{dataset}/versions/1/delta",
        "401 404 200 200 200 404 200",
    ),
    (API, "GET", "api-bug-dataset-flows", "/api/bugs/{bug}/dataset-flows", "401 404 200 200 200 404 200"),
    (API, "GET", "api-evaluations", "/api/evaluations?project={p}", "401 404 200 200 200 404 200"),
    # An empty body names no project: a 400 for the missing fields, whoever asks.
    (API, "POST", "api-evaluations", "/api/evaluations", "401 400 400 400 400 400 400"),
    (API, "POST", "api-evaluations-rerun", "/api/evaluations/rerun", "401 400 400 400 400 400 400"),
    (API, "GET", "api-evaluation", "/api/evaluations/{evaluation}", "401 404 200 200 200 404 200"),
    # the model registry: members read, managers register and promote
    (API, "GET", "api-models", "/api/projects/{p}/models", "401 404 200 200 200 404 200"),
    (API, "POST", "api-models", "/api/projects/{p}/models", "401 404 403 403 400 404 400"),
    (API, "GET", "api-model", "/api/projects/{p}/models/v2", "401 404 200 200 200 404 200"),
    (API, "GET", "api-model-gate", "/api/projects/{p}/models/v2/gate", "401 404 200 200 200 404 200"),
    (API, "POST", "api-model-promote", "/api/projects/{p}/models/v2/promote", "401 404 403 403 400 404 400"),
    # --- on call: channels (managers), rules (members read, managers write), alerts (members) ----------
    (API, "GET", "api-channels", "/api/projects/{p}/channels", "401 404 403 403 200 404 200"),
    (API, "POST", "api-channels", "/api/projects/{p}/channels", "401 404 403 403 400 404 400"),
    (API, "GET", "api-channel", "/api/projects/{p}/channels/999999", "401 404 403 403 404 404 404"),
    (API, "PATCH", "api-channel", "/api/projects/{p}/channels/999999", "401 404 403 403 404 404 404"),
    (API, "DELETE", "api-channel", "/api/projects/{p}/channels/999999", "401 404 403 403 404 404 404"),
    (API, "POST", "api-channel-test", "/api/projects/{p}/channels/999999/test", "401 404 403 403 404 404 404"),
    (
        API,
        "POST",
        "api-channel-rotate-secret",
        "/api/projects/{p}/channels/999999/rotate-secret",
        "401 404 403 403 404 404 404",
    ),
    (
        API,
        "GET",
        "api-channel-deliveries",
        "/api/projects/{p}/channels/999999/deliveries",
        "401 404 403 403 404 404 404",
    ),
    (API, "GET", "api-alert-rules", "/api/projects/{p}/alert-rules", "401 404 200 200 200 404 200"),
    (API, "POST", "api-alert-rules", "/api/projects/{p}/alert-rules", "401 404 403 403 400 404 400"),
    (API, "GET", "api-alert-rule", "/api/projects/{p}/alert-rules/999999", "401 404 404 404 404 404 404"),
    (API, "PATCH", "api-alert-rule", "/api/projects/{p}/alert-rules/999999", "401 404 403 403 404 404 404"),
    (API, "DELETE", "api-alert-rule", "/api/projects/{p}/alert-rules/999999", "401 404 403 403 404 404 404"),
    (API, "POST", "api-alert-rule-mute", "/api/projects/{p}/alert-rules/999999/mute", "401 404 403 403 404 404 404"),
    (
        API,
        "POST",
        "api-alert-rule-unmute",
        "/api/projects/{p}/alert-rules/999999/unmute",
        "401 404 403 403 404 404 404",
    ),
    (API, "GET", "api-alerts", "/api/projects/{p}/alerts", "401 404 200 200 200 404 200"),
    (API, "GET", "api-on-call", "/api/projects/{p}/on-call", "401 404 200 200 200 404 200"),
    (API, "PUT", "api-on-call", "/api/projects/{p}/on-call", "401 404 403 403 400 404 400"),
    (API, "POST", "api-alert-acknowledge", "/api/alerts/999999/acknowledge", "401 404 404 404 404 404 404"),
    (API, "POST", "api-alert-snooze", "/api/alerts/999999/snooze", "401 404 404 404 404 404 404"),
    (PAGE, "GET", "alert-ack", "/alerts/ack/no-such-token", "404 404 404 404 404 404 404"),
    (PAGE, "GET", "channels-page", "/projects/{p}/channels", "302 404 403 403 200 404 200"),
    (PAGE, "POST", "channels-page", "/projects/{p}/channels", "302 404 403 403 400 404 400"),
    (PAGE, "GET", "alert-rules-page", "/projects/{p}/alert-rules", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "alerts-page", "/projects/{p}/alerts", "302 404 200 200 200 404 200"),
    # --- labeling pages ------------------------------------------------------------------
    (PAGE, "GET", "home", "/", "302 200 200 200 200 200 200"),
    (PAGE, "GET", "project-detail", "/projects/{p}/", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "project-export", "/projects/{p}/export", "302 404 403 403 200 200 200"),
    (PAGE, "POST", "project-export", "/projects/{p}/export", "302 404 403 403 302 302 302"),
    (PAGE, "GET", "import-page", "/projects/{p}/import", "302 404 403 403 200 404 200"),
    (PAGE, "POST", "import-page", "/projects/{p}/import", "302 404 403 403 400 404 400"),
    (PAGE, "GET", "import-detail", "/projects/{p}/import/{import}", "302 404 403 403 200 404 200"),
    (PAGE, "POST", "import-detail", "/projects/{p}/import/{import}", "302 404 403 403 400 404 400"),
    (PAGE, "GET", "feedback-delay", "/projects/{p}/delay", "302 404 403 200 200 404 200"),
    (PAGE, "GET", "label", "/projects/{p}/label", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "items", "/projects/{p}/items", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "item", "/projects/{p}/items/{hidden}", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "review", "/projects/{p}/review", "302 404 403 200 200 404 200"),
    (PAGE, "POST", "review-next", "/projects/{p}/review/next", "302 404 403 200 200 404 200"),
    (PAGE, "POST", "review-resolve", "/projects/{p}/review/items/{hidden}/resolve", "302 404 403 200 200 404 200"),
    (PAGE, "POST", "review-skip", "/projects/{p}/review/items/{hidden}/skip", "302 404 403 200 200 404 200"),
    (PAGE, "GET", "quality", "/projects/{p}/quality", "302 404 403 200 200 404 200"),
    (PAGE, "GET", "quality-agreement", "/projects/{p}/quality/agreement", "302 404 403 200 200 404 200"),
    (PAGE, "GET", "quality-annotators", "/projects/{p}/quality/annotators", "302 404 403 200 200 404 200"),
    (PAGE, "POST", "quality-run-create", "/projects/{p}/quality/runs", "302 404 403 403 302 404 302"),
    (PAGE, "POST", "quality-settings", "/projects/{p}/quality/settings", "302 404 403 403 302 404 302"),
    (PAGE, "POST", "project-slice-fields", "/projects/{p}/settings/slice-fields", "302 404 403 403 302 404 302"),
    (PAGE, "GET", "project-new", "/projects/new", "302 403 403 403 403 403 200"),
    (PAGE, "POST", "project-new", "/projects/new", "302 403 403 403 403 403 400"),
    (PAGE, "GET", "project-edit", "/projects/{p}/edit", "302 404 403 403 200 404 200"),
    (PAGE, "POST", "project-edit", "/projects/{p}/edit", "302 404 403 403 400 404 400"),
    (PAGE, "POST", "project-label-add", "/projects/{p}/labels/add", "302 404 403 403 400 404 400"),
    (PAGE, "POST", "project-label-op", "/projects/{p}/labels/kiwi/retire", "302 404 403 403 302 404 302"),
    # --- bug-queue pages -----------------------------------------------------------------
    (PAGE, "GET", "bug-queue", "/bugs", "302 200 200 200 200 200 200"),
    (PAGE, "GET", "bug-queue", "/bugs?project={p}", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "bug-page", "/bugs/{bug}", "302 404 200 200 200 404 200"),
    (PAGE, "POST", "bug-comment", "/bugs/{bug}/comments", "302 404 302 302 302 404 302"),
    (PAGE, "POST", "bug-edit", "/bugs/{bug}/edit", "302 404 403 302 302 404 302"),
    (PAGE, "POST", "bug-settings", "/bugs/settings/{p}", "302 404 403 403 302 404 302"),
    (PAGE, "GET", "digest-list", "/bugs/digests?project={p}", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "digest-page", "/bugs/digests/{digest}", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "triage", "/triage?project={p}", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "datasets-page", "/projects/{p}/datasets", "302 404 200 200 200 404 200"),
    (PAGE, "GET", "models-page", "/projects/{p}/models", "302 404 200 200 200 404 200"),
    (PAGE, "POST", "models-page", "/projects/{p}/models", "302 404 403 403 400 404 400"),
    (PAGE, "GET", "evaluation-page", "/evaluations/{evaluation}", "302 404 200 200 200 404 200"),
    (
        PAGE,
        "GET",
        "evaluation-failures",
        "/evaluations/{evaluation}/datasets/{dataset}/failures",
        "302 404 200 200 200 404 200",
    ),
    # Undoing a review decision: `hidden` has imported ground truth and no decision to undo (409).
    (API, "POST", "api-item-resolve-undo", "/api/items/{hidden}/resolve/undo", "401 404 403 409 409 404 409"),
    (PAGE, "POST", "review-undo", "/projects/{p}/review/items/{hidden}/undo", "302 404 403 200 200 404 200"),
    (API, "POST", "api-bugs-bulk", "/api/bugs/bulk", "401 400 400 400 400 400 400"),
    (API, "POST", "api-bug-snooze", "/api/bugs/{bug}/snooze", "401 404 403 200 200 404 200"),
    (API, "POST", "api-bug-unsnooze", "/api/bugs/{bug}/unsnooze", "401 404 403 200 200 404 200"),
]


def _patterns(module):
    """(name, pattern) of every route a urls module declares."""
    out = []

    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns)
            elif isinstance(p, URLPattern):
                out.append((p.name, p))

    walk(module.urlpatterns)
    return out


def _api_methods(pattern) -> set[str]:
    view = getattr(pattern.callback, "view_class", None)
    return {m.upper() for m in ("get", "post", "patch", "put", "delete") if view is not None and hasattr(view, m)}


def test_every_route_is_in_the_table():
    """Each API operation (route × implemented method) and each page has its row."""
    from alerts import urls as alert_pages
    from alerts.api import urls as alert_api
    from bugqueue import urls as bug_pages
    from bugqueue.api import urls as bug_api
    from labeling import urls as label_pages
    from labeling.api import urls as label_api

    covered = {(m, name) for _, m, name, _, _ in TABLE}
    missing = []
    for module in (label_api, bug_api, alert_api):
        for name, pattern in _patterns(module):
            missing += [(m, name) for m in sorted(_api_methods(pattern)) if (m, name) not in covered]
    for module in (label_pages, bug_pages, alert_pages):
        missing += [("*", name) for name, _ in _patterns(module) if name not in {n for _, n in covered}]
    assert missing == []


# --- the world ----------------------------------------------------------------------------------
def build_world():
    users = {name: UserFactory(username=f"perm-{name}") for name in ROLES if name not in ("anon",)}
    users["staff"].is_staff = True
    users["staff"].save()
    manager = users["manager"]
    project = project_create(
        creator=manager,
        name="Permissions",
        annotations_per_item=1,
        labels=[LabelSpec(k, k.title(), "", str(i + 1)) for i, k in enumerate(LABELS)],
    )
    add_member(project, users["annotator"], Role.ANNOTATOR)
    add_member(project, users["reviewer"], Role.REVIEWER)
    export_grant_add(project=project, username=users["grant"].username, actor=manager)
    at = (timezone.now() - timedelta(days=2)).isoformat()

    def ingest(ext, text, label):
        items_ingest(
            project=project,
            rows=[
                {
                    "external_id": ext,
                    "payload": {"text": text},
                    "prediction": {
                        "model_version": "v1",
                        "label": label,
                        "predicted_at": at,
                        "probabilities": {k: (0.8 if k == label else 0.1) for k in LABELS},
                    },
                }
            ],
        )
        return project.items.get(external_id=ext)

    mine = ingest("mine-ext", "MINETEXT", "kiwi")
    claim = assignment_claim_next(project=project, annotator=users["annotator"])
    assert claim.item_id == mine.pk
    annotation_submit(assignment_id=claim.assignment_id, annotator=users["annotator"], label="mango")
    hidden = ingest("hidden-ext", "HIDDENTEXT", "kiwi")
    opened = ingest("open-ext", "OPENTEXT", "plum")
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(hidden.pk, "mango", "imported")])
    bug = bug_report(
        project=project,
        reporter=manager,
        title="Routing errors",
        kind="failed_prediction",
        model_version="v1",
        failures=[
            {"external_id": "mine-ext", "predicted_label": "kiwi", "expected_label": "mango"},
            {"external_id": "hidden-ext", "predicted_label": "kiwi", "expected_label": "mango"},
            {"external_id": "open-ext", "predicted_label": "plum", "expected_label": "kiwi"},
        ],
    ).bug
    dataset = dataset_create(project=project, actor=manager, name="Hard cases")
    dataset_version_curate(dataset=dataset, actor=manager, add_external_ids=["mine-ext", "hidden-ext"])
    evaluation = evaluation_run(
        project=project,
        actor=manager,
        model_version="v2",
        dataset_ids=[dataset.pk],
        batch=predictions_parse(
            project=project,
            rows=[{"external_id": "mine-ext", "label": "plum"}, {"external_id": "hidden-ext", "label": "plum"}],
        ),
    )
    model_ensure(project=project, version="v2", actor=manager)
    run = quality_run_request(project_id=project.pk, requested_by=manager)
    export, _ = export_request(project=project, actor=manager)
    file_import = ImportJob.objects.create(project=project, original_name="items.csv", format="csv", columns=["id"])
    today = timezone.now().date()
    digest = digest_build(project=project, week_start=today - timedelta(days=today.weekday()))
    ids = {
        "p": project.pk,
        "bug": bug.pk,
        "dataset": dataset.pk,
        "evaluation": evaluation.pk,
        "run": run.pk,
        "export": export.pk,
        "import": file_import.pk,
        "assignment": claim.assignment_id,
        "annotation": mine.annotations.get().pk,
        "digest": digest.pk,
        "hidden": hidden.pk,
        "outsider": users["outsider"].username,
        "grantee": users["grant"].username,
    }
    secret = {"ext": {"hidden-ext", "open-ext"}, "text": {"HIDDENTEXT", "OPENTEXT"}, "ids": {hidden.pk, opened.pk}}
    return users, ids, secret, {"mine": mine, "hidden": hidden, "open": opened, "bug": bug, "project": project}


# --- leak detection -----------------------------------------------------------------------------
def _mentions_secret(node: dict, secret) -> bool:
    if node.get("external_id") in secret["ext"]:
        return True
    if any(isinstance(node.get(k), int) and node[k] in secret["ids"] for k in ("item", "item_id")):
        return True
    for key in ("input", "payload"):
        value = node.get(key)
        if isinstance(value, dict) and value.get("text") in secret["text"]:
            return True
    return False


def _json_leaks(doc, secret) -> list:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if _mentions_secret(node, secret):
                found.extend(
                    f"{k}={node[k]!r}" for k in sorted(LABEL_KEYS & set(node)) if node[k] not in (None, "", [], {})
                )
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return found


LABEL_WORD = re.compile(r"\b(" + "|".join(LABELS) + r")\b", re.I)


def _html_leaks(html: str, secret) -> list:
    """A table row or list entry that names a secret item and a label."""
    found = []
    for chunk in re.split(r"<tr|<li", html):
        if any(m in chunk for m in secret["ext"] | secret["text"]):
            found += [m.group(0) for m in LABEL_WORD.finditer(re.sub(r"<[^>]+>", " ", chunk))]
    return found


def leaks_in(content: bytes, content_type: str, secret) -> list:
    text = content.decode("utf-8", "replace")
    if "html" in content_type:
        return _html_leaks(text, secret)
    if "ndjson" in content_type or "jsonl" in content_type:
        return _json_leaks([json.loads(line) for line in text.splitlines() if line.strip()], secret)
    if "json" in content_type:
        return _json_leaks(json.loads(text), secret)
    return []


def request_once(client, kind, method, path):
    """One request in a savepoint that is rolled back (the world stays as built)."""
    with transaction.atomic():
        if kind == API:
            body, ctype = ("{}" if method != "GET" else ""), "application/json"
        else:
            body, ctype = "", "application/x-www-form-urlencoded"
        response = client.generic(method, path, data=body, content_type=ctype)
        content = b"".join(response.streaming_content) if response.streaming else response.content
        transaction.set_rollback(True)
    return response.status_code, content, response.get("Content-Type", "")


def run_matrix(role, users, ids, secret):
    client = Client(raise_request_exception=False)
    if role != "anon":
        client.force_login(users[role])
    wrong, leaks = [], []
    for kind, method, _name, path, statuses in TABLE:
        url = path.format(**ids)
        expected = int(statuses.split()[ROLES.index(role)])
        status, content, ctype = request_once(client, kind, method, url)
        if status != expected:
            wrong.append(f"{method} {url}: {status} (expected {expected})")
        if role == "annotator" and 200 <= status < 300:
            found = leaks_in(content, ctype, secret)
            if found:
                leaks.append(f"{method} {url}: {', '.join(found[:6])}")
    return wrong, leaks


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(role):
    users, ids, secret, _ = build_world()
    wrong, leaks = run_matrix(role, users, ids, secret)
    assert leaks == [], f"{len(leaks)} label leaks to the annotator:\n" + "\n".join(leaks)
    assert wrong == [], f"{len(wrong)} of {len(TABLE)} answers differ from the policy for {role}:\n" + "\n".join(wrong)
