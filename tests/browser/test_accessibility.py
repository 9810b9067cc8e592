"""Accessibility across the main pages: every visible text reads at WCAG AA contrast, the skip link
comes first, charts are images with a data table, and the settings form says what is wrong in words."""

from unittest import mock

import numpy as np
import pytest

from bugqueue.services.tags import tags_seed
from labeling.services.feedback_rollup import feedback_rollup_refresh
from labeling.services.labels import label_add
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute, quality_run_request
from tests.browser.conftest import login
from tests.bugqueue.factories import make_bug
from tests.labeling.factories import (
    DAY,
    ProjectFactory,
    annotators,
    crowd_project,
    cutoff_now,
    load_crowd,
    lognormal,
    simulate_crowd,
    synthetic_traffic,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every visible text node's colour against the first opaque background up its ancestors (colours
# with alpha are blended over what lies below); large text (24px, or 18.66px bold) needs 3:1.
# Disabled controls are exempt (WCAG 1.4.3).
CONTRAST_JS = """
() => {
  const parse = s => { const m = s.match(/[\\d.]+/g); if (!m) return null;
    return {r: +m[0], g: +m[1], b: +m[2], a: m.length > 3 ? +m[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const over = (top, bottom) => ({r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = {r: 255, g: 255, b: 255, a: 1};
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const opacity = el => { let o = 1; for (let e = el; e; e = e.parentElement) o *= +getComputedStyle(e).opacity; return o; };
  const fails = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode; const el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest("script,style,noscript,option,canvas,.skip-link,:disabled")) continue;
    const rect = el.getBoundingClientRect(); const st = getComputedStyle(el);
    if (!rect.width || !rect.height || st.visibility === "hidden" || el.closest("details:not([open]) > :not(summary)")) continue;
    if (el.getClientRects().length === 0) continue;
    const bg = background(el); let fg = parse(st.color); fg = over({...fg, a: fg.a * opacity(el)}, bg);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize); const bold = parseInt(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const where = `<${el.tagName.toLowerCase()} class="${el.className}"> "${node.textContent.trim().slice(0, 40)}"`;
    const bgText = `rgb(${Math.round(bg.r)},${Math.round(bg.g)},${Math.round(bg.b)})`;
    if (ratio < need - 0.005) fails.push(`${ratio.toFixed(2)} ${where} ${st.color} on ${bgText}`);
  }
  return fails;
}
"""


@pytest.fixture
def world(db):
    tags_seed()
    project, manager = crowd_project(k=3, accept_mode="calibrated", max_annotations_per_item=3)
    users = annotators(project, 5)
    load_crowd(
        project, users, simulate_crowd(n_items=30, accuracies=np.linspace(0.6, 0.9, 5), n_classes=3, per_item=3, seed=6)
    )
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk)
    quality_run_execute(run_id=run.pk)
    traffic = ProjectFactory(creator=manager, name="Fraud model")
    synthetic_traffic(traffic, n=300, days=30, cutoff=cutoff_now(), delays=lognormal(3 * DAY, 1.0), seed=2)
    feedback_rollup_refresh(project_id=traffic.pk)
    make_bug(traffic, manager, title="Refunds routed to shipping", priority="p1")
    make_bug(traffic, manager, title="Accents dropped", priority="p2")
    project.traffic = traffic
    return project, manager


def pages(project):
    p = project.pk
    return {
        "home": "/",
        "project": f"/projects/{p}/",
        "label": f"/projects/{p}/label",
        "review": f"/projects/{p}/review",
        "quality": f"/projects/{p}/quality?panels=inline",
        "delay": f"/projects/{project.traffic.pk}/delay",
        "bugs": "/bugs",
        "triage": f"/triage?project={project.traffic.pk}",
        "datasets": f"/projects/{p}/datasets",
        "models": f"/projects/{p}/models",
    }


def test_every_text_on_the_main_pages_has_aa_contrast(page, live_server, world):
    project, manager = world
    login(page, live_server, manager)
    failures = {}
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages(project).items():
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
            page.evaluate("() => document.querySelectorAll('details.chart-data').forEach(d => d.open = true)")
            fails = page.evaluate(CONTRAST_JS)
            if fails:
                failures[f"{name}@{width}"] = fails[:8]
            if width == 390:
                page.screenshot(path=f"/tmp/loupe-a11y-{name}-390.png", full_page=True)
    assert not failures, failures


def test_skip_link_first_and_focus_visible(page, live_server, world):
    project, manager = world
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/quality")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => { const a = document.activeElement; const r = a.getBoundingClientRect();"
        " return {text: a.textContent.trim(), href: a.getAttribute('href'), top: r.top, outline: getComputedStyle(a).outlineStyle}; }"
    )
    assert focused["text"] == "Skip to content" and focused["href"] == "#content"
    assert focused["top"] >= 0 and focused["outline"] != "none"  # visible when focused
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "content"
    page.keyboard.press("Tab")
    style = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert style != "none"


def test_every_chart_is_an_image_with_a_data_table(page, live_server, world):
    project, manager = world
    login(page, live_server, manager)
    seen = 0
    for path in (
        f"/projects/{project.pk}/quality",
        f"/projects/{project.traffic.pk}/delay",
        f"/triage?project={project.traffic.pk}",
    ):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        charts = page.evaluate(
            "() => [...document.querySelectorAll('canvas')].filter(c => Chart.getChart(c)).map(c => {"
            " const t = document.getElementById(c.getAttribute('aria-describedby') || '-');"
            " return {id: c.id, role: c.getAttribute('role'), label: c.getAttribute('aria-label'),"
            " table: !!t && t.tagName === 'DETAILS' && t.querySelectorAll('tbody tr').length}; })"
        )
        assert charts or path.startswith("/triage"), path  # the Pareto chart draws once bugs have tags
        for c in charts:
            assert c["role"] == "img" and c["label"] and c["table"], (path, c)
        seen += len(charts)
    assert seen >= 4


def test_settings_form_error_in_words_next_to_the_field(page, live_server, world):
    project, manager = world
    login(page, live_server, manager)
    page.goto(f"{live_server.url}/projects/{project.pk}/quality")
    page.fill("#auto-run", "lots")
    page.click("#quality-settings button[type=submit]")
    page.locator("#auto-run-error").wait_for()
    assert "enter a whole number of disputed items" in page.locator("#auto-run-error").inner_text()
    assert page.input_value("#auto-run") == "lots"
    assert page.get_attribute("#auto-run", "aria-invalid") == "true"
    page.set_viewport_size({"width": 390, "height": 900})
    page.locator("#quality-settings").screenshot(path="/tmp/loupe-a11y-settings-error-390.png")


# The innermost elements that reach past the viewport's right edge, to say what overflows.
PAST_THE_EDGE_JS = """
() => Array.from(document.body.querySelectorAll("*"))
  .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5 && e.getClientRects().length)
  .filter(e => !Array.from(e.children).some(c => c.getBoundingClientRect().right > innerWidth + 0.5))
  .slice(0, 5).map(e => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`)
"""


def phone_pages(project):
    """Every page the top nav and the project tabs link to (a manager sees every tab), triage included."""
    p = project.pk
    return {
        **pages(project),
        "bugs of the project": f"/bugs?project={p}",
        "triage, no bugs": f"/triage?project={p}",
        "items": f"/projects/{p}/items",
        "alerts": f"/projects/{p}/channels",
        "export": f"/projects/{p}/export",
        "import": f"/projects/{p}/import",
        "settings": f"/projects/{p}/edit",
        "delay, no traffic": f"/projects/{p}/delay",
        "traffic project": f"/projects/{project.traffic.pk}/",
    }


# Cards whose content runs past their edge (content that scrolls inside a card is not counted).
SPILLING_CARDS_JS = """
() => Array.from(document.querySelectorAll(".card")).filter(c => c.getClientRects().length
  && getComputedStyle(c).overflowX === "visible" && c.scrollWidth > c.clientWidth + 1).map(c => `${c.id}.${c.className}`)
"""


def test_no_page_scrolls_sideways_on_a_phone(page, live_server, world):
    """At 390 px every page fits: wide tables scroll inside their card or stack, never the page, and
    no card's content runs past its edge (a label with a long name and an unbroken guideline too)."""
    project, manager = world
    label_add(
        project=project,
        actor=manager,
        key="shipping_address_mismatch_reported",
        name="Shipping address mismatch reported by the customer",
        guideline="See https://wiki.example.com/support/guidelines/shipping/address-mismatch-reported-by-customer",
    )
    login(page, live_server, manager)
    too_wide = {}
    for width, height in ((390, 844), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        for name, path in phone_pages(project).items():
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
            scroll = page.evaluate("document.documentElement.scrollWidth")
            if scroll > width:
                too_wide[f"{name}@{width}"] = (scroll, page.evaluate(PAST_THE_EDGE_JS))
            spilling = page.evaluate(SPILLING_CARDS_JS)
            if spilling:
                too_wide[f"{name}@{width}, cards"] = spilling
            page.screenshot(
                path=f"/tmp/loupe-phone-{name.replace(' ', '-').replace(',', '')}-{width}.png", full_page=True
            )
    assert not too_wide, too_wide
