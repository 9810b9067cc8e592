"""Setting up a project in the browser: create it through the form (a bad value first: the message in
words next to the field, the value kept), then add, rename, retire and merge labels; screenshots at 390 px."""

import pytest

from labeling.models import Annotation, LabelClass, LabelOperation, Membership, Project
from labeling.services.projects import user_allow_project_create
from tests.browser.conftest import login
from tests.labeling.factories import ItemFactory, UserFactory, annotate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = "/tmp/loupe-project-setup"


def test_create_a_project_then_evolve_its_labels(page, live_server):
    creator = UserFactory(username="maker")
    user_allow_project_create(user=creator)
    UserFactory(username="ann")
    page.set_viewport_size({"width": 390, "height": 900})
    login(page, live_server, creator)
    page.click("#new-project")
    page.fill("#f-name", "Tickets")
    page.fill("input[name=label-0-key]", "spam")
    page.fill("input[name=label-0-name]", "Spam")
    page.fill("input[name=label-0-hotkey]", "j")
    page.fill("textarea[name=label-0-guideline]", "Unsolicited ads or scams.")
    page.fill("input[name=label-1-key]", "ham")
    page.fill("input[name=label-1-name]", "Not spam")
    page.click("#label-add-row")  # the script adds a third row
    page.fill("input[name=label-2-key]", "other")
    page.fill("input[name=label-2-name]", "Other")
    page.fill("#f-lease_seconds", "ten")  # not a number
    page.fill("input[name=member-0-username]", "ann")
    page.click("#pf-submit")
    assert "Must be a whole number." in page.locator("#e-lease_seconds").inner_text()
    assert page.input_value("#f-lease_seconds") == "ten"
    assert page.input_value("input[name=label-2-key]") == "other"
    page.screenshot(path=f"{SHOTS}-error-390.png", full_page=True)
    assert not Project.objects.exists()

    page.fill("#f-lease_seconds", "900")
    page.click("#pf-submit")
    page.wait_for_url(f"{live_server.url}/projects/*/")
    project = Project.objects.get(name="Tickets")
    assert project.lease_seconds == 900
    assert list(project.labels.values_list("key", flat=True)) == ["spam", "ham", "other"]
    assert Membership.objects.get(project=project, user__username="ann").role == "annotator"
    page.screenshot(path=f"{SHOTS}-detail-390.png", full_page=True)

    item = ItemFactory(project=project)
    annotate(item, [(UserFactory(), "other")], settle_item=False)

    page.click("#project-edit-link")
    page.fill("#label-add-form input[name=key]", "promo")
    page.fill("#label-add-form input[name=name]", "Promotion")
    page.fill("#label-add-form input[name=hotkey]", "s")  # reserved: s skips
    page.click("#label-add-form button[type=submit]")
    assert "reserved" in page.locator("#e-add-hotkey").inner_text()
    assert page.input_value("#label-add-form input[name=name]") == "Promotion"
    page.fill("#label-add-form input[name=hotkey]", "")
    page.click("#label-add-form button[type=submit]")
    assert "added" in page.locator(".messages").inner_text()
    page.fill("li[data-key=ham] input[name=name]", "Legit")
    page.fill("li[data-key=ham] textarea[name=guideline]", "Mail the person wanted.")
    page.click("li[data-key=ham] .pf-label-edit button[type=submit]")
    assert LabelClass.objects.get(project=project, key="ham").name == "Legit"
    page.click("li[data-key=promo] form[action$='/retire'] button")
    assert "retired" in page.locator(".messages").inner_text()
    page.on("dialog", lambda d: d.accept())
    page.select_option("li[data-key=other] select[name=into]", "spam")
    page.click("li[data-key=other] .pf-merge button")
    assert "merged into 'spam'" in page.locator(".messages").inner_text()
    assert Annotation.objects.get(item=item).label == "spam"
    kinds = list(LabelOperation.objects.filter(project=project).values_list("kind", flat=True))
    assert kinds == ["add", "rename", "retire", "merge"]
    assert "Merged" in page.locator("#label-operations").inner_text()
    page.screenshot(path=f"{SHOTS}-labels-390.png", full_page=True)

    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.click("#guideline-versions summary")
    versions = page.locator("#guideline-versions").inner_text()
    assert "promo" in versions and "retired" in versions
    page.screenshot(path=f"{SHOTS}-versions-390.png", full_page=True)
