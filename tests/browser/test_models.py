import json

import pytest

from bugqueue.models import Dataset
from bugqueue.services.datasets import Addition, dataset_version_create
from labeling.models import ModelStageChange, ModelVersion, Role
from tests.browser.conftest import login
from tests.bugqueue.factories import label, make_items
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def upload(page, version, name, text, mime):
    page.fill("#evaluate-version", version)
    page.set_input_files("#evaluate-file", files=[{"name": name, "mimeType": mime, "buffer": text.encode()}])
    with page.expect_navigation():
        page.click("#evaluate-form button[type=submit]")


def open_promote(page, version):
    page.locator(f'tr.model-row[data-version="{version}"] .promote-btn').click()
    page.wait_for_selector("#promote:not([hidden])")


def test_register_evaluate_files_matrix_and_promote_through_the_gate(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    items = make_items(project, 6, prefix="m")
    label(items, "pos")
    ds = Dataset.objects.create(project=project, name="resolved bugs", gate=True, min_accuracy=0.8)
    dataset_version_create(dataset_id=ds.pk, add=[Addition(i.pk, "pos") for i in items], note="seed")

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/models")
    assert page.locator("#project-tabs a.active").inner_text() == "Models"
    assert "No model version registered yet" in page.locator("#models-empty").inner_text()
    assert "No evaluation yet" in page.locator("#matrix-empty").inner_text()

    # register with the keyboard shortcut n
    page.keyboard.press("n")
    page.keyboard.type("v1")
    page.fill("#register-description", "first model")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator('tr.model-row[data-version="v1"] .stage').inner_text().startswith("Candidate")
    page.fill("#register-version", "v1")
    with page.expect_navigation():
        page.click("#register-form button[type=submit]")
    assert "already registered" in page.locator("#register-error").inner_text()

    # evaluate v1 from JSON Lines: every item right
    jsonl = "\n".join(json.dumps({"external_id": i.external_id, "label": "pos"}) for i in items)
    upload(page, "v1", "v1.jsonl", jsonl, "application/x-ndjson")
    assert "Evaluated v1 on 6 predictions: passed" in page.locator(".messages").inner_text()

    # a bad file: the rows' errors are shown and nothing is evaluated
    upload(page, "v2", "bad.csv", "external_id,label\nm0,pos\nm1,maybe\n", "text/csv")
    error = page.locator("#evaluate-error")
    assert "maybe" in error.inner_text() and error.locator("tbody tr").count() == 1
    assert error.locator("tbody td").first.inner_text() == "3"  # the CSV line
    assert not ModelVersion.objects.filter(version="v2").exists()

    # v1 to production: the gate allows it
    page.goto(f"{live_server.url}/projects/{project.pk}/models")
    open_promote(page, "v1")
    page.wait_for_selector("#gate-answer .gate-verdict.ok")
    assert "resolved bugs" in page.locator("#gate-answer").inner_text()
    assert page.locator("#promote-go").inner_text() == "Promote"
    with page.expect_navigation():
        page.click("#promote-go")
    assert page.locator('tr.model-row[data-version="v1"] .stage').inner_text().startswith("Production")

    # evaluate v2 from CSV (with a probabilities column): half wrong
    rows = ["external_id,label,probabilities"]
    for k, i in enumerate(items):
        lab = "neg" if k < 3 else "pos"
        probs = json.dumps({"pos": 0.1, "neg": 0.8, "neu": 0.1} if k < 3 else {"pos": 0.9, "neg": 0.05, "neu": 0.05})
        rows.append(f'{i.external_id},{lab},"{probs.replace(chr(34), chr(34) * 2)}"')
    upload(page, "v2", "v2.csv", "\n".join(rows) + "\n", "text/csv")
    assert "Evaluated v2 on 6 predictions: did not pass" in page.locator(".messages").inner_text()
    assert page.locator("#matrix td.pass").count() == 1 and page.locator("#matrix td.fail").count() == 1
    assert page.locator("#matrix td.fail a").first.get_attribute("href").startswith("/evaluations/")
    page.screenshot(path="/tmp/loupe-models.png", full_page=True)

    # v2 to production: the gate refuses, naming the dataset; the manager overrides with a reason
    page.locator("#models-table tbody tr").first.click()  # v2 is the newest row
    page.keyboard.press("p")
    page.wait_for_selector("#gate-answer .gate-verdict.bad")
    answer = page.locator("#gate-answer").inner_text()
    assert "refuses production" in answer and "resolved bugs" in answer
    assert page.locator("#gate-answer li.fail").count() == 1
    go = page.locator("#promote-go")
    assert go.inner_text() == "Override and promote" and go.is_disabled()
    page.screenshot(path="/tmp/loupe-models-gate.png", full_page=True)
    page.fill("#override-reason", "v1 breaks billing; hotfix")
    assert go.is_enabled()
    with page.expect_navigation():
        go.click()
    assert page.locator('tr.model-row[data-version="v2"] .stage').inner_text().startswith("Production")
    assert page.locator('tr.model-row[data-version="v1"] .stage').inner_text().startswith("Retired")
    v2_history = page.locator('tr.model-row[data-version="v2"] details.history')
    v2_history.locator("summary").click()
    assert "override: v1 breaks billing; hotfix" in v2_history.inner_text()
    change = ModelStageChange.objects.filter(model__version="v2", to_stage="production").get()
    assert change.override_reason == "v1 breaks billing; hotfix" and change.actor == manager
    assert change.gate[0]["passed"] is False

    # the phone width
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/projects/{project.pk}/models")
    page.screenshot(path="/tmp/loupe-models-phone.png", full_page=True)
    width = page.evaluate("document.querySelector('main').scrollWidth")  # the page's own content
    assert width <= 390, width
    open_promote(page, "v1")
    page.wait_for_selector("#gate-answer .gate-verdict")
    page.screenshot(path="/tmp/loupe-models-phone-dialog.png")
    page.keyboard.press("Escape")
    assert page.locator("#promote").is_hidden()

    # a matrix cell opens its evaluation
    page.locator("#matrix td.fail a").first.click()
    page.wait_for_url("**/evaluations/*")
    assert "v2" in page.locator("h1").inner_text()


def test_an_annotator_sees_the_page_without_forms(page, live_server):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    annotator = add_member(project, role=Role.ANNOTATOR)
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/models")
    assert page.locator("#models-empty").is_visible()
    assert page.locator("#register-form").count() == 0 and page.locator("#promote").count() == 0


def test_a_new_dataset_version_is_re_evaluated_from_stored_predictions(page, live_server):
    """After a dataset version change the gate refuses a candidate evaluated on the old version; the
    dialog's re-evaluate button recomputes it from the predictions Loupe kept, and the gate allows it."""
    from bugqueue.services.evaluations import evaluation_run, predictions_parse
    from bugqueue.services.gate import model_promote

    manager = UserFactory()
    project = ProjectFactory(creator=manager, name="Tickets")
    items = make_items(project, 7, prefix="r")
    label(items, "pos")
    ds = Dataset.objects.create(project=project, name="resolved bugs", gate=True, min_accuracy=0.8)
    dataset_version_create(dataset_id=ds.pk, add=[Addition(i.pk, "pos") for i in items[:6]], note="seed")
    rows = [{"external_id": i.external_id, "label": "pos"} for i in items]
    for version in ("v1", "v3"):
        if version == "v3":
            model_promote(project=project, actor=manager, version="v1", stage="production")
        evaluation_run(
            project=project, actor=manager, model_version=version, batch=predictions_parse(project=project, rows=rows)
        )
    dataset_version_create(dataset_id=ds.pk, add=[Addition(items[6].pk, "pos")], note="one more")

    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/models")
    open_promote(page, "v3")
    page.wait_for_selector("#gate-answer .gate-verdict.bad")
    assert "not evaluated on v2" in page.locator("#gate-answer").inner_text()
    page.click("#gate-rerun")
    page.wait_for_selector("#gate-answer .gate-verdict.ok")
    assert page.locator("#gate-answer li.pass").count() == 1
    with page.expect_navigation():
        page.click("#promote-go")
    assert page.locator('tr.model-row[data-version="v3"] .stage').inner_text().startswith("Production")
    change = ModelStageChange.objects.get(model__version="v3", to_stage="production")
    assert change.override_reason == "" and change.gate[0]["passed"] and change.gate[0]["version"] == 2
