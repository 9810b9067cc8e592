// Item explorer and item page: keyboard (/ search, j/k move, Enter open, x select, Esc back) and the
// managers' bulk actions, which call POST /api/projects/{id}/items/bulk and reload the page.
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

  function chosen() { return picks.filter(function (p) { return p.checked; }).map(function (p) { return Number(p.value); }); }
  function refresh() {
    const n = chosen().length;
    count.textContent = String(n);
    bar.hidden = n === 0;
    if (all) { all.checked = n > 0 && n === picks.length; all.indeterminate = n > 0 && n < picks.length; }
  }
  picks.forEach(function (p) { p.addEventListener("change", refresh); });
  if (all) all.addEventListener("change", function () { picks.forEach(function (p) { p.checked = all.checked; }); refresh(); });

  const verbs = { set_priority: "Set the priority of", send_to_review: "Send to review", delete: "Delete (only those nobody worked on)" };
  bar.querySelectorAll("button[data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      const ids = chosen();
      const action = button.dataset.action;
      if (!ids.length) return;
      if (action === "delete" && !window.confirm(verbs[action] + ": " + ids.length + " item(s)?")) return;
      const body = { action: action, ids: ids };
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
})();
