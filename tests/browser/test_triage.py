import pytest

from bugqueue.models import BugEvent
from bugqueue.services.tags import tags_seed
from labeling.models import Role
from tests.browser.conftest import login
from tests.bugqueue.factories import ingest_items, make_bug
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def row(page, bug):
    return page.locator(f"tr.bug-row[data-bug-id='{bug.pk}']")


def test_triage_three_bugs_with_the_keyboard_only(page, live_server):
    tags_seed()  # transactional tests flush the data migration's tags
    lead = UserFactory()
    project = ProjectFactory(creator=lead, name="Tickets")
    reviewer = add_member(project, UserFactory(username="rita"), role=Role.REVIEWER)
    first = make_bug(project, lead, title="Refunds routed to shipping", priority="p1")
    second = make_bug(project, lead, title="Accents dropped before tokenization", priority="p2")
    third = make_bug(project, lead, title="Seed not set in retraining", priority="p3")

    login(page, live_server, lead)
    page.goto(f"{live_server.url}/triage?project={project.pk}")
    assert row(page, first).get_attribute("class").split().count("selected") == 1

    # 1st bug: priority P0 (a new bug becomes triaged)
    page.keyboard.press("p")
    page.keyboard.press("0")
    row(page, first).locator(".cell-priority", has_text="P0").wait_for()
    row(page, first).locator(".cell-status", has_text="Triaged").wait_for()

    # 2nd bug: tag it "label flip" by typing in the picker
    page.keyboard.press("j")
    page.keyboard.press("t")
    page.keyboard.type("label fl")
    page.keyboard.press("Enter")
    row(page, second).locator(".cell-tags .chip", has_text="label_flip").wait_for()

    # 3rd bug: assign to rita, then resolve as fixed with a note
    page.keyboard.press("j")
    page.keyboard.press("a")
    page.keyboard.type("rit")
    page.keyboard.press("Enter")
    row(page, third).locator(".cell-assignee", has_text="rita").wait_for()
    page.keyboard.press("r")  # the Resolve dialog, on its resolution: f picks fixed and moves to the note
    page.keyboard.press("f")
    page.keyboard.type("Seeded in the new pipeline")
    page.keyboard.press("Enter")
    row(page, third).locator(".cell-status", has_text="Resolved").wait_for()
    page.screenshot(path="/tmp/loupe-triage.png", full_page=True)

    first.refresh_from_db()
    second.refresh_from_db()
    third.refresh_from_db()
    assert (first.priority, first.status) == ("p0", "triaged")
    assert list(second.tags.values_list("slug", flat=True)) == ["label_flip"] and second.status == "new"
    assert third.assignee == reviewer and third.status == "resolved" and third.resolution == "fixed"
    assert third.resolution_note == "Seeded in the new pipeline"
    changes = set(BugEvent.objects.filter(actor=lead).values_list("bug_id", "field", "to_value"))
    assert {
        (first.pk, "priority", "p0"),
        (first.pk, "status", "triaged"),
        (second.pk, "tags", "label_flip"),
        (third.pk, "assignee", "rita"),
        (third.pk, "status", "resolved"),
    } <= changes
    assert page.url.endswith(f"/triage?project={project.pk}")  # no reload, no navigation


def test_queue_and_bug_page(page, live_server):
    tags_seed()
    lead = UserFactory()
    project = ProjectFactory(creator=lead, name="Tickets")
    items = ingest_items(project, 3)
    bug = make_bug(
        project,
        lead,
        title="Refunds routed to shipping",
        kind="failed_prediction",
        tags=["label_flip"],
        failures=[
            {"external_id": it.external_id, "predicted_label": "pos", "expected_label": "neg", "model_version": "v1"}
            for it in items
        ],
    )
    make_bug(project, lead, title="Another one", tags=["data_drift"], priority="p0")

    login(page, live_server, lead)
    page.click("nav.mainnav >> text=Bugs")
    page.locator("#bug-table").wait_for()
    assert page.locator("#bug-table tbody tr").count() == 2
    page.click("#facets a[data-facet='tag'][data-value='label_flip']")
    page.wait_for_url("**tag=label_flip**")
    assert page.locator("#bug-table tbody tr").count() == 1
    page.screenshot(path="/tmp/loupe-bugs.png", full_page=True)
    page.click("text=Refunds routed to shipping")
    page.locator("#occurrences-chart").wait_for()
    assert page.locator("tr.failure-row").count() == 3
    page.fill("#comment-body", "Looks like the tokenizer")
    page.click("#comments button")
    page.locator(".bq-comment", has_text="Looks like the tokenizer").wait_for()
    page.screenshot(path="/tmp/loupe-bug.png", full_page=True)
    assert bug.comments.count() == 1


def test_r_f_resolves_through_the_dialog_and_records_only_what_happened(page, live_server):
    """`r f` opens the shared Resolve dialog on Fixed; with no dataset chosen or following the bug's
    tags and no look-alikes asked for, no dataset step is recorded. `r w` resolves as won't fix."""
    from bugqueue.models import BugDatasetFlow

    tags_seed()
    lead = UserFactory()
    project = ProjectFactory(creator=lead, name="Tickets")
    first = make_bug(project, lead, title="Refunds routed to shipping", priority="p1")
    second = make_bug(project, lead, title="Seed not set in retraining", priority="p2")

    login(page, live_server, lead)
    page.goto(f"{live_server.url}/triage?project={project.pk}")
    dialog = page.locator("#resolve-dialog")
    page.keyboard.press("r")
    dialog.wait_for(state="visible")
    assert dialog.locator("#resolve-datasets").is_visible()  # the dataset step is in the dialog
    page.keyboard.press("f")
    assert dialog.locator("input[name=resolution][value=fixed]").is_checked()
    page.keyboard.type("Routing rule fixed")  # f moved the focus to the note
    page.keyboard.press("Enter")
    dialog.locator("#flow-text", has_text="No dataset step").wait_for()
    row(page, first).locator(".cell-status", has_text="Resolved").wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    page.keyboard.press("j")
    page.keyboard.press("r")
    dialog.wait_for(state="visible")
    page.keyboard.press("w")
    assert dialog.locator("input[name=resolution][value=wont_fix]").is_checked()
    assert not dialog.locator("#resolve-datasets").is_visible()
    page.keyboard.press("Enter")
    row(page, second).locator(".cell-status", has_text="Won't fix").wait_for()
    page.keyboard.press("Escape")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.resolution, first.resolution_note) == ("resolved", "fixed", "Routing rule fixed")
    assert (second.status, second.resolution) == ("wont_fix", "wont_fix")
    assert not BugDatasetFlow.objects.exists()  # no "done · added 0" step that did nothing
    assert page.url.endswith(f"/triage?project={project.pk}")


def test_pareto_labels_fit_and_stats_and_chart_follow_each_action(page, live_server):
    tags_seed()
    lead = UserFactory()
    project = ProjectFactory(creator=lead, name="Tickets")
    make_bug(project, lead, title="Accents dropped", tags=["dropped_special_characters"])
    bug = make_bug(project, lead, title="Imputed zeros", tags=["corrupted_imputation"])
    for word, tag in zip(
        ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"],
        ["missing_feature_values", "schema_change", "data_leakage", "data_drift"] * 2,
        strict=True,
    ):
        make_bug(project, lead, title=f"Other bug {word}", tags=[tag], priority="p3")

    login(page, live_server, lead)
    page.goto(f"{live_server.url}/triage?project={project.pk}")
    page.locator("#pareto-chart").wait_for()
    ticks = page.evaluate("() => Chart.getChart('pareto-chart').scales.x.getLabelItems().map((it) => it.label)")
    assert all(len(label) <= 16 for label in ticks) and "Dropped special…" in ticks, ticks
    # The data keeps the whole name: the tooltip and the chart's data table show it.
    assert "Dropped special characters" in page.evaluate("() => Chart.getChart('pareto-chart').data.labels")
    lefts = page.evaluate(
        """() => {
          const c = Chart.getChart('pareto-chart'), s = c.scales.x, ctx = c.ctx;
          ctx.save();
          ctx.font = Chart.helpers.toFont(s.options.ticks.font).string;
          const out = s.getLabelItems().map((it) =>
            it.options.translation[0] - ctx.measureText(it.label).width * Math.cos(it.options.rotation));
          ctx.restore();
          return out;
        }"""
    )
    assert min(lefts) >= 0, lefts
    page.click("#pareto-chart-table summary")
    assert page.locator("#pareto-chart-table th", has_text="Dropped special characters").count() == 1
    assert page.locator("#stat-closed").inner_text() == "0"

    # Tag the selected bug (the first row): the chart and the table follow without a reload.
    row(page, bug).locator(".cell-priority").click()
    page.keyboard.press("t")
    page.keyboard.type("label fl")
    page.keyboard.press("Enter")
    page.locator("#pareto-chart-table th", has_text="Label flip").wait_for()
    page.wait_for_function("() => Chart.getChart('pareto-chart').data.labels.includes('Label flip')")

    # Resolve it: the week's Closed count and the chart follow.
    page.keyboard.press("r")
    page.locator("#resolve-dialog").wait_for(state="visible")
    page.keyboard.press("w")
    page.keyboard.press("Enter")
    page.locator("#stat-closed", has_text="1").wait_for()
    page.wait_for_function("() => !Chart.getChart('pareto-chart').data.labels.includes('Label flip')")
    assert page.locator("#pareto-chart-table th", has_text="Corrupted imputation").count() == 0
    page.keyboard.press("Escape")
    page.screenshot(path="/tmp/loupe-triage-pareto.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.locator("#pareto-chart").wait_for()
    page.locator("#pareto").screenshot(path="/tmp/loupe-triage-pareto-phone.png")
