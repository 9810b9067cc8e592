import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from bugqueue.models import Evaluation, EvaluationResult
from labeling.models import ModelVersion, Role
from labeling.services.registry import model_register
from tests.bugqueue.services.test_gate import gate_dataset
from tests.labeling.factories import add_member

pytestmark = pytest.mark.django_db


def web(user):
    c = Client()
    c.force_login(user)
    return c


def test_matrix_shows_regressions_per_bug_and_dropped_slices(user, project, django_assert_max_num_queries):
    ds = gate_dataset(project, name="resolved bugs", version=4)
    model_register(project=project, actor=user, version="v5")
    evaluation = Evaluation.objects.create(project=project, model_version="v5")
    EvaluationResult.objects.create(
        evaluation=evaluation,
        dataset=ds,
        dataset_version=4,
        n=166,
        n_missing=0,
        accuracy=0.7,
        passed=False,
        reasons=["38 items regressed"],
        baseline_model="v2",
        regressions=38,
        regressions_by_bug={"21": 30, "22": 8},
        warnings=["slice channel=email dropped 12.0 points", {"slice": "tier=gold", "accuracy_change": -0.08}],
    )
    client = web(user)
    with django_assert_max_num_queries(8):
        res = client.get(f"/projects/{project.pk}/models")
    assert res.status_code == 200
    html = res.content.decode()
    assert f'href="/evaluations/{evaluation.pk}"' in html
    assert 'href="/bugs/21">bug #21</a>&nbsp;×&nbsp;30,' in html and 'href="/bugs/22">bug #22</a>&nbsp;×&nbsp;8' in html
    assert "slice channel=email dropped 12.0 points" in html and "slice tier=gold dropped 8.0 points" in html
    assert "vs v2" in html and "38 regressions" in html


def test_posts_need_the_manager_role_and_bad_files_change_nothing(user, project):
    annotator = add_member(project, role=Role.ANNOTATOR)
    assert web(annotator).get(f"/projects/{project.pk}/models").status_code == 200
    res = web(annotator).post(f"/projects/{project.pk}/models", {"action": "register", "version": "v1"})
    assert res.status_code == 403 and not ModelVersion.objects.exists()

    c = web(user)
    bad = SimpleUploadedFile("p.jsonl", b'{"external_id": "x", "label": "pos"}\n{oops\n')
    res = c.post(f"/projects/{project.pk}/models", {"action": "evaluate", "model_version": "v1", "file": bad})
    assert res.status_code == 400 and "Line 2" in res.content.decode()
    res = c.post(f"/projects/{project.pk}/models", {"action": "evaluate", "model_version": "v1"})
    assert res.status_code == 400 and "Choose a predictions file" in res.content.decode()
    assert not ModelVersion.objects.exists() and not Evaluation.objects.exists()
    res = c.post(f"/projects/{project.pk}/models", {"action": "register", "version": "v1"})
    assert res.status_code == 302 and ModelVersion.objects.get().version == "v1"
