"""A small world for the bad-input tests: a project with items and predictions, a manager, an
annotator holding a lease, a staff user, a bug and a dataset. Made through the services."""

from rest_framework.test import APIClient

from bugqueue.services.datasets import dataset_create
from labeling.models import Role
from labeling.services.ingestion import items_ingest
from labeling.services.projects import user_allow_project_create
from labeling.services.queue.claim import assignment_claim_next
from tests.bugqueue.factories import make_bug
from tests.labeling.factories import ProjectFactory, UserFactory, add_member


def input_world() -> dict:
    manager = UserFactory()
    user_allow_project_create(user=manager)  # some cases post a new project
    project = ProjectFactory(creator=manager)
    annotator = add_member(project, UserFactory(), Role.ANNOTATOR)
    staff = UserFactory(is_staff=True)
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": f"it-{n}",
                "payload": {"text": f"item {n}"},
                "prediction": {"model_version": "v1", "label": "pos", "predicted_at": "2026-01-05T10:00:00Z"},
            }
            for n in range(3)
        ],
    )
    claim = assignment_claim_next(project=project, annotator=annotator)
    bug = make_bug(project, manager)
    dataset = dataset_create(project=project, actor=manager, name="golden")
    ids = {"p": project.pk, "a": claim.assignment_id, "i": claim.item_id, "b": bug.pk, "d": dataset.pk}
    return {
        "ids": ids,
        "project": project,
        "users": {"manager": manager, "annotator": annotator, "staff": staff, "anon": None},
    }


def client(user=None) -> APIClient:
    """An API client that answers a 500 as a response (to count it) rather than raising it."""
    c = APIClient()
    c.raise_request_exception = False
    if user is not None:
        c.force_authenticate(user=user)
    return c


def error_of(res, status: int) -> dict:
    """The response's error object, after checking its status and the one error shape."""
    assert res.status_code == status, (res.status_code, res.content[:500])
    assert res["Content-Type"].startswith("application/json"), res["Content-Type"]
    body = res.json()
    assert set(body) == {"error"} and set(body["error"]) <= {"code", "message", "fields"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    return body["error"]
