// The bug stream (/bugs): keyboard navigation and bulk actions through the JSON API.
//   j / k move · x selects · Enter opens · / searches · ? shows the keys · Esc closes or clears
//   with a selection: a assign · p priority · t tag · r resolve · s snooze
// Every bulk action is one POST /api/bugs/bulk (merge: POST /api/bugs/merge); the page then reloads
// to show the stream as it now is, with the answer's summary.
(() => {
  const DATA = JSON.parse(document.getElementById("stream-data").textContent);
  const table = document.getElementById("bug-table");
  const bar = document.getElementById("bulk");
  const toast = document.getElementById("toast");
  const help = document.getElementById("stream-help");
  const csrf = (document.querySelector("meta[name=csrf-token]") || {}).content || "";
  const rows = () => (table ? Array.from(table.querySelectorAll("tr.bug-row")) : []);
  const selected = new Set();
  let index = 0;

  function say(text, isError) {
    toast.textContent = text;
    toast.classList.toggle("error", !!isError);
    toast.hidden = false;
    clearTimeout(say.timer);
    say.timer = setTimeout(() => { toast.hidden = true; }, isError ? 8000 : 4000);
  }
  const told = sessionStorage.getItem("stream-message");
  if (told) { sessionStorage.removeItem("stream-message"); say(told); }

  // --- cursor and selection -----------------------------------------------------------------
  function move(i) {
    const all = rows();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((r, j) => r.classList.toggle("cursor", j === index));
    all[index].scrollIntoView({ block: "nearest" });
  }
  function refresh() {
    rows().forEach((r) => {
      const on = selected.has(r.dataset.bugId);
      r.classList.toggle("picked", on);
      const box = r.querySelector("input.pick");
      if (box) box.checked = on;
    });
    if (bar) {
      bar.hidden = selected.size === 0;
      document.getElementById("bulk-count").textContent = `${selected.size} selected`;
    }
    const all = document.getElementById("select-all");
    if (all) all.checked = selected.size > 0 && selected.size === rows().length;
  }
  function toggle(row) {
    if (!row || !DATA.canTriage) return;
    const id = row.dataset.bugId;
    if (selected.has(id)) selected.delete(id); else selected.add(id);
    refresh();
  }
  if (table) {
    move(0);
    table.addEventListener("click", (e) => {
      const row = e.target.closest("tr.bug-row");
      if (!row) return;
      if (e.target.matches("input.pick")) { toggle(row); return; }
      if (!e.target.closest("a")) move(rows().indexOf(row));
    });
    const all = document.getElementById("select-all");
    if (all) all.addEventListener("change", () => {
      rows().forEach((r) => (all.checked ? selected.add(r.dataset.bugId) : selected.delete(r.dataset.bugId)));
      refresh();
    });
  }

  // --- the bulk bar -------------------------------------------------------------------------
  if (bar) {
    const members = document.getElementById("bulk-members");
    [DATA.me, ...DATA.members.filter((m) => m !== DATA.me)].forEach((name) => {
      const o = document.createElement("option");
      o.value = name;
      members.appendChild(o);
    });
    const tagSelect = document.getElementById("bulk-tag");
    DATA.tags.forEach((t) => {
      const o = document.createElement("option");
      o.value = t.slug;
      o.textContent = t.slug;
      tagSelect.appendChild(o);
    });
    const snoozeSelect = document.getElementById("bulk-snooze");
    const snoozeDate = document.getElementById("bulk-snooze-date");
    snoozeSelect.addEventListener("change", () => { snoozeDate.hidden = snoozeSelect.value !== "date"; });

    bar.querySelectorAll("form.st-op").forEach((form) => {
      let op = "add";
      form.querySelectorAll("button[data-op]").forEach((b) => b.addEventListener("click", () => { op = b.dataset.op; }));
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const action = form.dataset.action;
        const raw = form.elements.value.value;
        if (action === "assign") {
          if (!raw.trim()) { say("Type a username, or press Unassign.", true); return; }
          bulk("assign", raw.trim(), `assigned to ${raw.trim()}`);
        } else if (action === "priority") bulk("priority", raw, `priority ${raw.toUpperCase()}`);
        else if (action === "tag") bulk("tag", { [op]: [raw] }, `${op === "add" ? "tagged" : "untagged"} ${raw}`);
        else if (action === "resolve") bulk("resolve", raw, `resolved (${raw.replace("_", " ")})`);
        else if (action === "snooze") {
          const value = snoozeValue(raw, snoozeDate.value);
          if (value) bulk("snooze", value, "snoozed");
        }
      });
    });
    bar.addEventListener("keydown", (e) => {  // Enter on a picker applies it (a select does not submit)
      if (e.key === "Enter" && e.target.tagName === "SELECT") { e.preventDefault(); e.target.form.requestSubmit(); }
    });
    bar.querySelector("[data-unassign]").addEventListener("click", () => bulk("assign", null, "unassigned"));
    bar.querySelector("[data-unsnooze]").addEventListener("click", () => bulk("unsnooze", null, "unsnoozed"));
    document.getElementById("bulk-clear").addEventListener("click", () => { selected.clear(); refresh(); });
    document.getElementById("bulk-merge").addEventListener("click", merge);
  }

  function snoozeValue(choice, date) {
    if (choice === "forever") return {};
    if (choice === "date") {
      if (!date) { say("Pick the date the bugs come back.", true); return null; }
      return { until: new Date(date).toISOString() };
    }
    const [kind, n] = choice.split(":");
    if (kind === "hours") return { until: new Date(Date.now() + Number(n) * 3600e3).toISOString() };
    return { [kind]: Number(n) };
  }

  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    return { res, data };
  }
  const ids = () => rows().map((r) => r.dataset.bugId).filter((id) => selected.has(id)).map(Number);

  async function bulk(action, value, what) {
    if (!selected.size) { say("Select bugs first (x, or the checkboxes).", true); return; }
    const { res, data } = await post("/api/bugs/bulk", { bugs: ids(), action, value });
    if (!res.ok) { say((data.error && data.error.message) || `HTTP ${res.status}`, true); return; }
    let text = `${data.changed} bug${data.changed === 1 ? "" : "s"} ${what}`;
    if (data.unchanged) text += `, ${data.unchanged} already so`;
    if (data.skipped.length) text += `, ${data.skipped.length} skipped (${data.skipped[0].reason})`;
    sessionStorage.setItem("stream-message", text + ".");
    location.reload();
  }

  async function merge() {
    const chosen = ids();
    if (chosen.length < 2) { say("Select two bugs or more to merge.", true); return; }
    const [into, ...others] = chosen;
    if (!confirm(`Merge ${others.length} bug${others.length === 1 ? "" : "s"} into #${into}?`)) return;
    const { res, data } = await post("/api/bugs/merge", { into, bugs: others });
    if (res.status === 404) {
      say(`Merge answered 404${data.error ? `: ${data.error.message}` : ""} (is merging available on this server?)`, true);
      return;
    }
    if (!res.ok) { say((data.error && data.error.message) || `HTTP ${res.status}`, true); return; }
    sessionStorage.setItem("stream-message", `Merged ${others.length} into #${into}.`);
    location.reload();
  }

  // --- keys ---------------------------------------------------------------------------------
  const focusOp = (id) => {
    if (!bar || !selected.size) { say("Select bugs first (x).", true); return; }
    const el = document.getElementById(id);
    el.focus();
    if (el.tagName === "SELECT" && el.showPicker) { try { el.showPicker(); } catch (_) { /* not allowed */ } }
  };
  function showHelp(on) {
    help.hidden = !on;
    if (on) document.getElementById("stream-help-close").focus();
  }
  document.getElementById("stream-help-close").addEventListener("click", () => showHelp(false));
  help.addEventListener("click", (e) => { if (e.target === help) showHelp(false); });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName);
    if (e.key === "Escape") {
      if (!help.hidden) { showHelp(false); return; }
      if (typing) { document.activeElement.blur(); return; }
      if (selected.size) { selected.clear(); refresh(); }
      return;
    }
    if (typing || !help.hidden && e.key !== "?") return;
    const row = rows()[index];
    const keys = {
      j: () => move(index + 1), ArrowDown: () => move(index + 1),
      k: () => move(index - 1), ArrowUp: () => move(index - 1),
      x: () => toggle(row),
      Enter: () => { if (row) row.querySelector("a.open").click(); },
      "/": () => { const q = document.getElementById("q"); q.focus(); q.select(); },
      "?": () => showHelp(help.hidden),
      a: () => focusOp("bulk-assign"), p: () => focusOp("bulk-priority"), t: () => focusOp("bulk-tag"),
      r: () => focusOp("bulk-resolution"), s: () => focusOp("bulk-snooze"),
    };
    const fn = keys[e.key];
    if (!fn) return;
    e.preventDefault();
    fn();
  });
})();
