"""The review page, driven with the keyboard only."""

from unittest import mock

import numpy as np
import pytest

from labeling.models import GroundTruth, GuidelineRevision, Item, LabelChange, LabelClass, QualityItemResult, Role
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute, quality_run_request
from tests.browser.conftest import login
from tests.labeling.factories import UserFactory, add_member, annotators, crowd_project, load_crowd, simulate_crowd

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def scored_project():
    project, manager = crowd_project(k=3, accept_threshold=0.95, max_annotations_per_item=3)
    users = annotators(project, 6)
    crowd = simulate_crowd(n_items=40, accuracies=np.linspace(0.6, 0.95, 6), n_classes=3, per_item=3, seed=2)
    for i, it in enumerate(load_crowd(project, users, crowd)):
        Item.objects.filter(pk=it.pk).update(
            payload={"text": f"Ticket number {i}: my parcel never arrived", "channel": "email"}
        )
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk)
    run = quality_run_execute(run_id=run.pk)
    assert run.to_review >= 3
    return project, users


def test_resolve_items_with_the_keyboard(page, live_server):
    project, users = scored_project()
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/projects/{project.pk}/review")
    page.wait_for_selector("#review-item")
    first = page.locator("#review-external-id").inner_text()
    item = Item.objects.get(project=project, external_id=first)
    # The most doubtful item comes first, with every annotator named, the model and the consensus.
    lowest = QualityItemResult.objects.filter(run__project=project, outcome="review").order_by("quality").first()
    assert lowest.item_id == item.pk
    for ann in item.annotations.select_related("annotator"):
        assert ann.annotator.username in page.locator("#review-annotations").inner_text()
    assert page.locator("#review-probs tr").count() == 3
    assert page.locator("#review-quality").inner_text() == f"{lowest.quality:.3f}"
    page.screenshot(path="/tmp/loupe-review.png", full_page=True)

    page.keyboard.press("2")  # label c1's hotkey
    page.wait_for_function(
        "document.querySelector('#review-external-id') && "
        f"document.querySelector('#review-external-id').innerText !== '{first}'"
    )
    gt = GroundTruth.objects.get(item=item)
    assert (gt.label, gt.method, gt.decided_by_id) == ("c1", "adjudicated", reviewer.pk)
    assert "resolved as c1" in page.locator("#review-flash").inner_text()

    second = page.locator("#review-external-id").inner_text()
    page.keyboard.press("n")
    page.keyboard.type("Lost parcels are c2, whoever is asked.")  # digits typed in the note stay in the note
    page.keyboard.press("Escape")
    page.keyboard.press("g")  # the preview: nothing is saved before Enter
    page.keyboard.press("3")  # previews c2's guideline instead
    assert page.locator("#guideline-preview-added").inner_text() == "- Lost parcels are c2, whoever is asked."
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('#review-external-id') === null || "
        f"document.querySelector('#review-external-id').innerText !== '{second}'"
    )
    gt2 = GroundTruth.objects.get(item__project=project, item__external_id=second)
    assert (gt2.label, gt2.note) == ("c2", "Lost parcels are c2, whoever is asked.")
    rev = GuidelineRevision.objects.filter(label__project=project, label__key="c2").latest("id")
    assert rev.text.endswith("- Lost parcels are c2, whoever is asked.") and rev.author_id == reviewer.pk

    third = page.locator("#review-external-id").inner_text()
    page.keyboard.press("s")
    page.wait_for_function(
        "document.querySelector('#review-external-id') === null || "
        f"document.querySelector('#review-external-id').innerText !== '{third}'"
    )
    assert not GroundTruth.objects.filter(item__project=project, item__external_id=third).exists()
    page.screenshot(path="/tmp/loupe-review-after.png", full_page=True)


def test_empty_review_queue_says_so(page, live_server):
    project, _ = crowd_project(k=3)
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/projects/{project.pk}/review")
    assert "Nothing to review" in page.locator("#review-empty").inner_text()


def test_annotators_cannot_open_the_review_page(page, live_server):
    project, _ = crowd_project(k=3)
    annotator = add_member(project, UserFactory(), Role.ANNOTATOR)
    login(page, live_server, annotator)
    res = page.goto(f"{live_server.url}/projects/{project.pk}/review")
    assert res.status == 403


def test_a_consensus_nobody_chose_is_explained_and_not_highlighted(page, live_server):
    from tests.labeling.review_data import review_project

    project, _, reviewer, items = review_project()
    login(page, live_server, reviewer)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/projects/{project.pk}/review")
    page.wait_for_selector("#review-item")
    assert page.locator("#review-external-id").inner_text() == "ticket-00264"
    explanation = page.locator("#review-explanation")
    assert explanation.is_visible()
    assert explanation.inner_text() == (
        "The model and the annotators' track records point to Feature (quality 0.12), a label no annotator chose; "
        "the majority said Bug (2 of 3)."
    )
    assert page.locator("#review-majority").inner_text() == "bug Bug 2 of 3 votes"
    # Only the majority label is highlighted; Feature, which nobody chose, is not.
    assert page.locator("#resolve-form button.suggested").all_inner_texts() == ["1 Bug"]
    page.screenshot(path="/tmp/loupe-review-unchosen.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert explanation.is_visible()
    page.screenshot(path="/tmp/loupe-review-unchosen-390.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.keyboard.press("1")  # Bug: the reviewer confirms the majority
    page.wait_for_function("document.querySelector('#review-external-id').innerText === 'ticket-unanimous'")
    assert page.locator("#review-explanation").inner_text() == (
        "All 3 annotators said Bug; cleanlab's consensus is Feature (quality 0.21)."
    )
    assert page.locator("#review-current").inner_text() == "bug Bug (unanimous; stays until you decide)"
    assert page.locator("#resolve-form button.suggested").all_inner_texts() == ["1 Bug"]
    page.screenshot(path="/tmp/loupe-review-unanimous.png", full_page=True)

    page.keyboard.press("2")  # the reviewer sides with the consensus: the unanimous label is replaced
    page.wait_for_function("document.querySelector('#review-external-id').innerText === 'ticket-tie'")
    gt = GroundTruth.objects.get(item=items["ticket-unanimous"])
    assert (gt.label, gt.method, gt.decided_by_id) == ("feature", "adjudicated", reviewer.pk)
    assert page.locator("#resolve-form button.suggested").count() == 0  # a tie: nothing highlighted
    assert "split with no majority" in page.locator("#review-explanation").inner_text()


def test_undo_a_decision_with_u_and_preview_the_guideline_before_saving(page, live_server):
    project, _ = scored_project()
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/projects/{project.pk}/review")
    page.wait_for_selector("#review-item")
    first = page.locator("#review-external-id").inner_text()

    page.keyboard.press("2")  # decide c1
    page.wait_for_function(f"document.querySelector('#review-external-id').innerText !== '{first}'")
    toast = page.locator("#review-undo-toast")
    assert toast.inner_text().startswith("Decided c1")
    assert "Undo u" in toast.inner_text()
    assert first in page.locator("#review-recent").inner_text()
    page.screenshot(path="/tmp/loupe-review-undo-toast.png", full_page=True)

    page.keyboard.press("u")  # the decided item comes back into the pane
    page.wait_for_function(f"document.querySelector('#review-external-id').innerText === '{first}'")
    assert "Undone" in page.locator("#review-flash").inner_text()
    assert page.locator("#review-undo-toast").count() == 0
    item = Item.objects.get(project=project, external_id=first)
    assert not GroundTruth.objects.filter(item=item).exists() and item.status == "disputed"
    assert list(LabelChange.objects.filter(item=item).order_by("seq").values_list("label", "method")) == [
        ("c1", "adjudicated"),
        ("", "retracted"),
    ]

    # g previews the note appended to the suggested label's guideline; Esc saves nothing.
    guideline = LabelClass.objects.get(project=project, key="c2")
    revisions = GuidelineRevision.objects.filter(label__project=project).count()
    page.keyboard.press("n")
    page.keyboard.type("Damaged parcels are c2.")
    page.keyboard.press("Escape")
    page.keyboard.press("g")
    preview = page.locator("#guideline-preview")
    preview.wait_for(state="visible")
    page.keyboard.press("3")  # c2's guideline, with the addition highlighted
    assert page.locator("#guideline-preview-title").inner_text() == "The Class 2 guideline after this decision"
    assert page.locator("#guideline-preview-added").inner_text() == "- Damaged parcels are c2."
    assert page.locator("#guideline-preview-versions").get_attribute("href").endswith("#guideline-c2")
    page.screenshot(path="/tmp/loupe-review-preview.png", full_page=True)
    page.keyboard.press("Escape")
    assert not preview.is_visible()
    assert page.locator("#review-external-id").inner_text() == first
    assert GuidelineRevision.objects.filter(label__project=project).count() == revisions
    assert not GroundTruth.objects.filter(item=item).exists()
    assert LabelClass.objects.get(pk=guideline.pk).guideline == guideline.guideline

    page.keyboard.press("g")
    preview.wait_for(state="visible")
    page.keyboard.press("3")
    page.keyboard.press("Enter")  # decides c2 and saves the guideline
    page.wait_for_function(
        f"document.querySelector('#review-external-id') === null || "
        f"document.querySelector('#review-external-id').innerText !== '{first}'"
    )
    gt = GroundTruth.objects.get(item=item)
    assert (gt.label, gt.note) == ("c2", "Damaged parcels are c2.")
    assert LabelClass.objects.get(pk=guideline.pk).guideline.endswith("- Damaged parcels are c2.")

    # Undo with the button: the note leaves the guideline again; the project page lists both versions.
    page.locator("#review-undo").click()
    page.wait_for_function(f"document.querySelector('#review-external-id').innerText === '{first}'")
    assert "taken out of the guideline" in page.locator("#review-flash").inner_text()
    assert LabelClass.objects.get(pk=guideline.pk).guideline == guideline.guideline
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/projects/{project.pk}/#guideline-c2")
    versions = page.locator("#guideline-versions").inner_text()
    assert "Undone: the note from the review of item" in versions and "Damaged parcels are c2." in versions
