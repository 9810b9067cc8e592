import pytest

from bugqueue.models import Dataset
from bugqueue.services.datasets import Addition, dataset_version_create
from bugqueue.services.evaluations import evaluation_run, predictions_parse
from tests.browser.conftest import login
from tests.bugqueue.factories import label, make_items
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_datasets_page_shows_versions_and_a_pass_fail_matrix_with_click_through(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    items = make_items(project, 6, prefix="d")
    label(items, "pos")
    ds = Dataset.objects.create(project=project, name="regressions", min_accuracy=0.8)
    dataset_version_create(dataset_id=ds.pk, add=[Addition(i.pk, "pos") for i in items[:4]], note="seed")
    dataset_version_create(dataset_id=ds.pk, add=[Addition(i.pk, "pos") for i in items[4:]])
    good = [{"external_id": i.external_id, "label": "pos"} for i in items]
    bad = [{"external_id": i.external_id, "label": "neg" if k < 3 else "pos"} for k, i in enumerate(items)]
    evaluation_run(
        project=project, actor=manager, model_version="m-good", batch=predictions_parse(project=project, rows=good)
    )
    evaluation_run(
        project=project, actor=manager, model_version="m-bad", batch=predictions_parse(project=project, rows=bad)
    )

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/datasets")
    assert page.locator("#project-tabs a.active").inner_text() == "Datasets"
    assert page.locator(f"#dataset-{ds.pk} tbody tr").count() == 2  # two versions
    assert page.locator("#matrix td.pass").count() == 1 and page.locator("#matrix td.fail").count() == 1
    page.screenshot(path="/tmp/loupe-datasets.png", full_page=True)
    page.locator("#matrix td.fail a").click()
    page.wait_for_selector("#failures")
    assert page.locator("#failures tbody tr").count() == 3
    assert "m-bad" in page.locator("h1").inner_text()


def test_empty_state(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/datasets")
    assert "No validation datasets yet" in page.locator(".empty").inner_text()
