"""The bug page with many failures: a constant number of queries, failures in pages of 50, the
breakdowns by model version and by a slice field, the evaluations, mentions in comments."""

import pytest
from django.test import Client

from bugqueue.models import Dataset, DatasetMember, Evaluation, EvaluationResult
from bugqueue.services.comments import comment_add
from tests.bugqueue.factories import make_bug
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def _bug(project, n):
    failures = [
        {
            "payload": {"text": f"input {i}", "channel": "email" if i % 3 else "chat"},
            "predicted_label": "pos",
            "expected_label": "neg",
            "model_version": "v2" if i % 4 else "v1",
        }
        for i in range(n)
    ]
    return make_bug(project, title="Refunds routed to shipping", tags=["label_flip"], failures=failures)


def _page(user, url, django_assert_max_num_queries, limit=24):  # + the comments on the failing items
    c = Client()
    c.force_login(user)
    with django_assert_max_num_queries(limit):
        res = c.get(url)
    assert res.status_code == 200
    return res.content.decode()


@pytest.mark.parametrize("n", [3, 130])
def test_page_queries_do_not_grow_with_failures_comments_or_evaluations(
    user, project, n, django_assert_max_num_queries
):
    project.slice_fields = ["channel"]
    project.save(update_fields=["slice_fields"])
    bug = _bug(project, n)
    for i in range(n // 10 + 1):
        member = add_member(project, UserFactory(username=f"member{n}x{i}"))
        comment_add(bug=bug, author=user, body=f"@{member.username} look at case {i}")
    dataset = Dataset.objects.create(project=project, name="core")
    for ds_row in range(n // 30 + 1):
        evaluation = Evaluation.objects.create(project=project, model_version=f"v{ds_row + 3}", passed=True)
        EvaluationResult.objects.create(
            evaluation=evaluation,
            dataset=dataset,
            dataset_version=1,
            n=10,
            n_missing=0,
            accuracy=0.9,
            regressions_by_bug={str(bug.pk): 2},
            slices=[{"field": "bug", "value": bug.pk, "accuracy": 0.5}],
        )
    item = project.items.first()
    DatasetMember.objects.create(dataset=dataset, item=item, bug=bug, added_in=1, label="neg")
    html = _page(user, f"/bugs/{bug.pk}", django_assert_max_num_queries)
    assert html.count('class="failure-row"') == min(n, 50)
    assert 'data-field="channel"' in html and ">email</td>" in html and ">chat</td>" in html
    assert html.count('<strong class="bq-mention">') == n // 10 + 1
    assert html.count("/evaluations/") >= n // 30 + 1 and ">0.500<" in html


def test_failures_come_in_pages_of_fifty(user, project, django_assert_max_num_queries):
    _bug(project, 120)
    bug = project.bugs.get()
    first = _page(user, f"/bugs/{bug.pk}", django_assert_max_num_queries)
    assert "input 119" in first and "input 70" in first and "input 69" not in first
    assert "1–50 of 120" in first and 'id="failures-older"' in first and 'id="failures-newer"' not in first
    last = _page(user, f"/bugs/{bug.pk}?page=3", django_assert_max_num_queries)
    assert "101–120 of 120" in last and "input 0<" in last and "input 19<" in last and "input 20<" not in last
    assert last.count('class="failure-row"') == 20 and 'id="failures-older"' not in last
    assert "page 3 of 3" in _page(user, f"/bugs/{bug.pk}?page=99", django_assert_max_num_queries)
    assert "page 1 of 3" in _page(user, f"/bugs/{bug.pk}?page=x", django_assert_max_num_queries)
