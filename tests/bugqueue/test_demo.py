import pytest

from bugqueue.demo import demo_bugs_load
from bugqueue.models import Bug, Digest
from tests.labeling.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_demo_bugs_are_idempotent(user):
    project = ProjectFactory(creator=user, labels=_demo_labels())
    from labeling.demo import demo_rows
    from labeling.services.ingestion import items_ingest

    items_ingest(project=project, rows=demo_rows(120))
    assert demo_bugs_load(project=project) == 8
    assert demo_bugs_load(project=project) == 0
    bugs = Bug.objects.filter(project=project)
    assert bugs.count() == 8 and {b.status for b in bugs} == {
        "new",
        "triaged",
        "in_progress",
        "resolved",
        "wont_fix",
        "duplicate",
    }
    assert bugs.filter(regressed=True).count() == 1 and bugs.filter(failures__item__isnull=False).exists()
    assert Digest.objects.filter(project=project).count() == 1


def _demo_labels():
    from labeling.demo import LABELS

    return list(LABELS)
