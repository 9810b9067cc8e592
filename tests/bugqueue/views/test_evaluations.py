import re

import pytest
from django.test import Client

from labeling.models import Role
from tests.bugqueue.evaluation_factories import build_evaluation
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def web(user):
    c = Client()
    c.force_login(user)
    return c


def test_evaluation_page_shows_verdict_matrix_recall_slices_and_regressions_by_bug(
    user, project, django_assert_max_num_queries
):
    project.slice_fields = ["channel"]
    project.save(update_fields=["slice_fields"])
    built = build_evaluation(project, actor=user)
    c = web(user)
    with django_assert_max_num_queries(10):
        res = c.get(f"/evaluations/{built.candidate.pk}")
    html = res.content.decode()
    assert res.status_code == 200
    assert 'id="evaluation-verdict">failed' in html.replace("\n", "")
    assert "accuracy 33.3% is below the minimum 80.0%" in html and "slice channel=email dropped" in html
    assert "<code>m-prod</code> on the same version" in html
    assert f'href="/evaluations/{built.baseline.pk}"' in html  # the baseline's own evaluation
    # confusion: rows are the true label; billing was predicted account three times
    billing_row = re.search(r"<tr><th scope=\"row\">billing</th>(.*?)</tr>", html, re.S).group(1)
    assert [int(n) for n in re.findall(r">(\d+)</td>", billing_row)] == [3, 0, 0, 3]
    assert f'id="recall-chart-{built.result.pk}"' in html and '"recall": [0.5, 0.0, 1.0]' in html
    # slices: largest drop first, the dropped one marked
    slices = re.findall(r'<tr class="slice( dropped)?"', html)
    assert slices == [" dropped", ""]
    assert "−100.0 pp" in html and "−33.3 pp" in html
    # regressions grouped by bug, most first, each linking to its items
    failures = f"/evaluations/{built.candidate.pk}/datasets/{built.dataset.pk}/failures"
    assert re.findall(r'class="regression-bug" data-bug="(\d+)"', html) == [str(built.bug_a.pk), str(built.bug_b.pk)]
    assert f'href="{failures}?bug={built.bug_a.pk}"' in html and built.bug_a.title in html


def test_evaluation_page_empty_states(user, project):
    built = build_evaluation(project)
    built.result.slices = []
    built.result.regressions_by_bug = {}
    built.result.save()
    c = web(user)
    html = c.get(f"/evaluations/{built.candidate.pk}").content.decode()
    assert "this project declares no slice fields" in html
    assert f'<a href="/projects/{project.pk}/">project page</a>' in html and '{"slice_fields": [...]}' in html
    assert "every resolved-bug item the baseline got right is still right" in html
    project.slice_fields = ["channel"]
    project.save(update_fields=["slice_fields"])
    html = c.get(f"/evaluations/{built.candidate.pk}").content.decode()
    assert "ran before the project declared its slice fields (<code>channel</code>)" in html
    # no baseline: regressions are not counted, and the page says so
    built.result.baseline_model = ""
    built.result.previous = None
    built.result.save()
    html = c.get(f"/evaluations/{built.candidate.pk}").content.decode()
    assert "Not counted without a baseline" in html and "no model is in production" in html


def test_failures_of_one_bug_are_its_regressions_beside_the_baseline(user, project):
    built = build_evaluation(project)
    c = web(user)
    url = f"/evaluations/{built.candidate.pk}/datasets/{built.dataset.pk}/failures"
    html = c.get(url).content.decode()
    assert html.count('class="selected regression"') == 4  # every failure here is a regression
    html = c.get(f"{url}?bug={built.bug_a.pk}").content.decode()
    rows = re.findall(r"<code>(ev\d)</code>", html)
    assert rows == ["ev0", "ev1", "ev2"] and 'id="bug-filter"' in html and built.bug_a.title in html
    assert "<th>baseline</th>" in html and '<td class="ok-text">billing</td>' in html
    html = c.get(f"{url}?bug={built.bug_b.pk}").content.decode()
    assert re.findall(r"<code>(ev\d)</code>", html) == ["ev3"]

    # without a baseline, a bug's items the candidate gets wrong
    built.result.previous = None
    built.result.save()
    html = c.get(f"{url}?bug={built.bug_a.pk}").content.decode()
    assert re.findall(r"<code>(ev\d)</code>", html) == ["ev0", "ev1", "ev2"] and "there is no baseline" in html

    other = build_evaluation(ProjectFactory(creator=user), prefix="zz")
    for bad in ("abc", "0", str(other.bug_a.pk), "99999999999999999999"):
        assert c.get(f"{url}?bug={bad}").status_code == 404, bad


def test_evaluation_pages_follow_access_and_blind_labeling(user, project):
    built = build_evaluation(project)
    assert web(UserFactory()).get(f"/evaluations/{built.candidate.pk}").status_code == 404
    annotator = add_member(project, UserFactory(), role=Role.ANNOTATOR)
    c = web(annotator)
    res = c.get(f"/evaluations/{built.candidate.pk}")
    assert res.status_code == 200 and b"ev-confusion" in res.content  # aggregates only
    html = c.get(
        f"/evaluations/{built.candidate.pk}/datasets/{built.dataset.pk}/failures?bug={built.bug_a.pk}"
    ).content.decode()
    assert "ev0" not in html and 'id="failures-hidden"' in html and "3 items of this version are not listed" in html
    assert web(user).get("/evaluations/999999").status_code == 404
