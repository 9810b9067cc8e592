// Item explorer and item page: keyboard (/ search, j/k move, Enter open, x select, Esc back) and the
// managers' bulk actions, which call POST /api/projects/{id}/items/bulk and reload the page, on the
// chosen rows or on every item matching the filter. "Add to dataset" is the bug queue's operation:
// it calls the datasets API (POST /api/datasets to create one, POST /api/datasets/{id}/versions with
// the items' external ids), which freezes each item's current ground truth in a new version.
(function () {
  "use strict";

  function typing(e) {
    const t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable);
  }

  function csrfToken() {
    const raw = document.body.getAttribute("hx-headers");
    try { return JSON.parse(raw)["X-CSRFToken"]; } catch (err) { return ""; }
  }

  // The item page: Esc goes back to the list it came from.
  const back = document.getElementById("it-back");
  if (back) {
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && !typing(e)) { window.location.href = back.href; }
    });
    return;
  }

  const search = document.getElementById("ix-q");
  const rows = Array.from(document.querySelectorAll("#ix-table tbody tr.ix-row"));
  let cursor = -1;

  function move(to) {
    if (!rows.length) return;
    cursor = Math.max(0, Math.min(rows.length - 1, to));
    rows.forEach(function (r, i) { r.classList.toggle("selected", i === cursor); r.setAttribute("aria-selected", i === cursor ? "true" : "false"); });
    rows[cursor].scrollIntoView({ block: "nearest" });
  }

  rows.forEach(function (r, i) {
    r.addEventListener("click", function (e) {
      if (e.target.closest("a, input, button")) return;
      move(i);
      window.location.href = r.dataset.href;
    });
  });

  document.addEventListener("keydown", function (e) {
    if (document.querySelector("dialog[open]")) return; // a dialog has the keyboard
    if (e.key === "/" && !typing(e)) { e.preventDefault(); if (search) { search.focus(); search.select(); } return; }
    if (e.key === "Escape" && e.target === search) { search.blur(); return; }
    if (typing(e) || e.metaKey || e.ctrlKey || e.altKey) return;
    if (e.key === "j") { move(cursor + 1); }
    else if (e.key === "k") { move(cursor - 1); }
    else if (e.key === "Enter" && cursor >= 0) { window.location.href = rows[cursor].dataset.href; }
    else if (e.key === "x" && cursor >= 0) {
      const box = rows[cursor].querySelector(".ix-pick");
      if (box) { box.checked = !box.checked; refresh(); }
    }
  });

  // Bulk actions (managers only: the bar exists only for them).
  const bar = document.getElementById("ix-bulk");
  if (!bar) return;
  const picks = Array.from(document.querySelectorAll(".ix-pick"));
  const all = document.getElementById("ix-all");
  const count = document.getElementById("ix-selected");
  const status = document.getElementById("ix-bulk-status");

  const matchAllButton = document.getElementById("ix-match-all");
  let matchAll = false; // every item matching the filter, not only the rows ticked on this page

  function checked() { return picks.filter(function (p) { return p.checked; }); }
  function chosen() { return checked().map(function (p) { return Number(p.value); }); }
  function refresh() {
    const n = chosen().length;
    if (n < picks.length) matchAll = false;
    count.textContent = matchAll ? "All matching" : String(n);
    bar.hidden = n === 0;
    if (all) { all.checked = n > 0 && n === picks.length; all.indeterminate = n > 0 && n < picks.length; }
    if (matchAllButton) matchAllButton.hidden = matchAll || n === 0 || n < picks.length;
  }
  picks.forEach(function (p) { p.addEventListener("change", refresh); });
  if (all) all.addEventListener("change", function () { picks.forEach(function (p) { p.checked = all.checked; }); refresh(); });
  if (matchAllButton) matchAllButton.addEventListener("click", function () { matchAll = true; refresh(); });

  // The page's filters, as the bulk API and the list API take them (no page, no ordering, no blanks).
  function currentFilters() {
    const out = {};
    new URLSearchParams(window.location.search).forEach(function (v, k) {
      if (k !== "page" && k !== "ordering" && v !== "") out[k] = v;
    });
    return out;
  }

  async function api(method, url, payload) {
    const opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": csrfToken() } };
    if (payload) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(payload); }
    let res = null, data = null;
    try { res = await fetch(url, opts); data = await res.json(); } catch (err) { /* offline or not JSON */ }
    return { ok: !!(res && res.ok), status: res ? res.status : 0, data: data };
  }
  function errorOf(out) {
    const e = out.data && out.data.error;
    return (e && e.message) || "Could not reach the server (" + (out.status || "offline") + "). Try again.";
  }

  const verbs = { set_priority: "Set the priority of", send_to_review: "Send to review", delete: "Delete (only those nobody worked on)" };
  bar.querySelectorAll("button[data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      const ids = chosen();
      const action = button.dataset.action;
      if (!ids.length) return;
      const what = matchAll ? "every item matching the filter" : ids.length + " item(s)";
      if (action === "delete" && !window.confirm(verbs[action] + ": " + what + "?")) return;
      const body = matchAll ? { action: action, filters: currentFilters() } : { action: action, ids: ids };
      if (action === "set_priority") {
        const v = Number(document.getElementById("ix-priority").value);
        if (!Number.isInteger(v)) { status.textContent = "The priority must be a whole number."; return; }
        body.value = v;
      }
      bar.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      status.textContent = "Working…";
      fetch(bar.dataset.api, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
      }).then(function (resp) {
        return resp.json().then(function (data) { return { ok: resp.ok, data: data }; });
      }).then(function (res) {
        if (!res.ok) { throw new Error((res.data.error && res.data.error.message) || "The action failed."); }
        const d = res.data;
        status.textContent = d.changed + " changed" + (d.skipped ? ", " + d.skipped + " skipped" : "") + ". Reloading…";
        window.setTimeout(function () { window.location.reload(); }, 600);
      }).catch(function (err) {
        status.textContent = err.message;
        bar.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
      });
    });
  });

  // Add to dataset: a dialog to choose (or name) the dataset; the datasets API does the rest.
  const dialog = document.getElementById("ix-ds-dialog");
  const openButton = document.getElementById("ix-ds-open");
  if (!dialog || !openButton) return;
  const CAP = 5000; // items collected from the filter for one version
  const choice = document.getElementById("ix-ds-choice");
  const newBox = document.getElementById("ix-ds-new");
  const nameInput = document.getElementById("ix-ds-name");
  const noteInput = document.getElementById("ix-ds-note");
  const scope = document.getElementById("ix-ds-scope");
  const errorBox = document.getElementById("ix-ds-error");
  const result = document.getElementById("ix-ds-result");
  const addButton = document.getElementById("ix-ds-add");
  const skipButton = document.getElementById("ix-ds-skip");
  let pending = null; // {externalIds, capped} being added

  function fail(message) { errorBox.textContent = message; errorBox.hidden = !message; }
  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text) node.textContent = text;
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  async function loadDatasets() {
    const out = await api("GET", "/api/datasets?project=" + bar.dataset.project);
    choice.replaceChildren();
    if (!out.ok) { fail(errorOf(out)); return; }
    out.data.forEach(function (d) {
      choice.appendChild(el("option", d.name + " (v" + d.latest_version + ")", { value: String(d.id) }));
    });
    choice.appendChild(el("option", "New dataset…", { value: "new" }));
    if (!out.data.length) choice.value = "new";
    newBox.hidden = choice.value !== "new";
  }
  choice.addEventListener("change", function () {
    newBox.hidden = choice.value !== "new";
    if (!newBox.hidden) nameInput.focus();
  });

  // The external ids to add: the ticked rows, or the first CAP items matching the filter (by id).
  async function collect() {
    if (!matchAll) return { externalIds: checked().map(function (p) { return p.dataset.external; }), capped: false };
    const ids = [];
    const query = new URLSearchParams(currentFilters());
    query.set("page_size", "1000");
    let url = bar.dataset.list + "?" + query.toString();
    while (url && ids.length < CAP) {
      const out = await api("GET", url);
      if (!out.ok) throw new Error(errorOf(out));
      out.data.results.forEach(function (r) { ids.push(r.external_id); });
      url = out.data.next;
    }
    return { externalIds: ids.slice(0, CAP), capped: ids.length > CAP || !!url };
  }

  openButton.addEventListener("click", async function () {
    fail("");
    result.replaceChildren();
    skipButton.hidden = true;
    addButton.disabled = false;
    pending = null;
    scope.textContent = matchAll
      ? "Every item matching the filter, up to the first " + CAP.toLocaleString() + " by id."
      : chosen().length + " selected item(s).";
    dialog.showModal();
    choice.focus();
    await loadDatasets();
  });
  document.getElementById("ix-ds-close").addEventListener("click", function () { dialog.close(); });

  async function datasetId() {
    if (choice.value !== "new") return { id: choice.value, name: choice.selectedOptions[0].textContent.replace(/ \(v\d+\)$/, "") };
    const name = nameInput.value.trim();
    if (!name) { nameInput.focus(); throw new Error("Name the new dataset."); }
    const out = await api("POST", "/api/datasets", { project: Number(bar.dataset.project), name: name });
    if (!out.ok) throw new Error(errorOf(out));
    await loadDatasets();
    choice.value = String(out.data.id);
    newBox.hidden = true;
    return { id: String(out.data.id), name: out.data.name };
  }

  function showDone(dataset, data, capped) {
    result.replaceChildren();
    const link = el("a", "", { href: bar.dataset.datasetsPage + "#dataset-" + dataset.id, id: "ix-ds-link" });
    const line = el("p", "", { class: "msg ok", id: "ix-ds-done" });
    if (data.changed) {
      const v = data.version;
      link.textContent = dataset.name + " v" + v.number;
      line.append("Added " + v.added + " item(s) to ", link, " (" + v.size + " in all).");
    } else {
      link.textContent = dataset.name;
      line.append("Nothing changed: the items are already in ", link, ".");
    }
    result.appendChild(line);
    const refused = (data.refused && data.refused.without_ground_truth) || [];
    if (refused.length) {
      result.appendChild(el("p", refused.length + " item(s) without ground truth were left out:", { class: "muted" }));
      result.appendChild(el("p", refused.join(", "), { class: "ix-ds-refused" }));
    }
    if (capped) result.appendChild(el("p", "Only the first " + CAP.toLocaleString() + " matching items (by id) were sent; narrow the filter for the rest.", { class: "muted" }));
    link.focus();
  }

  async function add(skipRefused) {
    fail("");
    addButton.disabled = true;
    skipButton.hidden = true;
    try {
      const dataset = await datasetId();
      if (!pending) pending = await collect();
      if (!pending.externalIds.length) throw new Error("No item to add.");
      const body = { add: pending.externalIds, note: noteInput.value.trim() || "Added from the item explorer", skip_refused: skipRefused };
      const out = await api("POST", "/api/datasets/" + dataset.id + "/versions", body);
      if (out.ok) { showDone(dataset, out.data, pending.capped); pending = null; return; }
      const fields = (out.data && out.data.error && out.data.error.fields) || {};
      if (out.status === 400 && fields.without_ground_truth && !skipRefused) {
        fail(errorOf(out) + " Without ground truth: " + fields.without_ground_truth.slice(0, 20).join(", ") +
          (fields.without_ground_truth.length > 20 ? "…" : ""));
        skipButton.hidden = pending.externalIds.length <= fields.without_ground_truth.length;
        if (!skipButton.hidden) skipButton.focus();
        return;
      }
      throw new Error(errorOf(out));
    } catch (err) {
      fail(err.message);
    } finally {
      addButton.disabled = false;
    }
  }
  document.getElementById("ix-ds-form").addEventListener("submit", function (e) { e.preventDefault(); add(false); });
  skipButton.addEventListener("click", function () { add(true); });
})();
