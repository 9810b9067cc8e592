// The weekly triage page: keyboard-first, inline updates through the JSON API (no reloads).
//   j / k (or arrows) move · p priority · t tag · a assign · r resolve (the shared Resolve dialog)
//   s triaged/in progress · Enter opens the bug · Esc cancels a picker
// After every change the week's counts and the Pareto chart are read again (GET /api/triage).
(() => {
  const table = document.getElementById("triage-table");
  const canTriage = JSON.parse(document.getElementById("can-triage").textContent);
  const TAGS = JSON.parse(document.getElementById("tags-data").textContent);
  const MEMBERS = JSON.parse(document.getElementById("members-data").textContent);
  const picker = document.getElementById("picker");
  const pickerTitle = document.getElementById("picker-title");
  const pickerInput = document.getElementById("picker-input");
  const pickerList = document.getElementById("picker-list");
  const pickerHelp = document.getElementById("picker-help");
  const STATUS_LABEL = { new: "New", triaged: "Triaged", in_progress: "In progress", resolved: "Resolved",
                         wont_fix: "Won't fix", duplicate: "Duplicate" };

  const statsBox = document.getElementById("triage-stats");
  let chart = null;
  // Long tag names are shortened on the axis (…); the tooltip and the chart's data table have them whole.
  const MAX_LABEL = 16;
  const short = (name) => (name.length > MAX_LABEL ? `${name.slice(0, MAX_LABEL - 1).trimEnd()}…` : name);

  drawPareto(JSON.parse(document.getElementById("pareto-data").textContent));
  if (!table) return;
  const rows = () => Array.from(table.querySelectorAll("tr.bug-row"));
  let index = 0;
  let modal = null; // the open picker: {onKey(e)}

  function select(i) {
    const all = rows();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((r, j) => r.classList.toggle("selected", j === index));
    all[index].scrollIntoView({ block: "nearest" });
  }
  const current = () => rows()[index];
  select(0);
  table.addEventListener("click", (e) => {
    const row = e.target.closest("tr.bug-row");
    if (row && !e.target.closest("a")) select(rows().indexOf(row));
  });

  const { api, say } = window.Loupe; // static/loupe/api.js: the shared fetch helper and toast

  function render(row, bug) {
    row.dataset.status = bug.status;
    row.dataset.priority = bug.priority;
    row.dataset.tags = bug.tags.join(",");
    row.dataset.assignee = bug.assignee || "";
    const esc = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
    row.querySelector(".cell-status").innerHTML =
      `<span class="st st-${bug.status}">${STATUS_LABEL[bug.status] || bug.status}</span>` +
      (bug.regressed && bug.status === "new" ? ' <span class="st regressed">regressed</span>' : "");
    row.querySelector(".cell-priority").innerHTML =
      `<span class="prio prio-${bug.priority}">${bug.priority.toUpperCase()}</span>`;
    row.querySelector(".cell-tags").innerHTML = bug.tags.map((t) => `<span class="chip">${esc(t)}</span>`).join("");
    row.querySelector(".cell-assignee").textContent = bug.assignee || "—";
    row.classList.remove("flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("flash");
  }

  async function patch(row, body, what) {
    try {
      const bug = await api("PATCH", `/api/bugs/${row.dataset.bugId}`, body);
      render(row, bug);
      say(`#${bug.id}: ${what}`);
      refresh();
    } catch (err) {
      say(`#${row.dataset.bugId}: ${err.message}`, true);
    }
  }

  // --- pickers ---------------------------------------------------------------------------------
  function close() {
    picker.hidden = true;
    pickerInput.hidden = true;
    pickerInput.value = "";
    pickerInput.onkeydown = null;
    modal = null;
  }

  // A filterable list: type to filter, arrows to move, Enter to choose.
  function listPicker({ title, help, items, onChoose, filter = true }) {
    let active = 0, shown = items;
    pickerTitle.textContent = title;
    pickerHelp.textContent = help;
    const draw = () => {
      pickerList.innerHTML = "";
      shown.forEach((it, i) => {
        const li = document.createElement("li");
        li.className = i === active ? "active" : "";
        li.innerHTML = `<span class="check">${it.checked ? "✓" : ""}</span><span></span><span class="hint"></span>`;
        li.children[1].textContent = it.label;
        li.children[2].textContent = it.hint || "";
        li.onclick = () => { close(); onChoose(it); };
        pickerList.appendChild(li);
      });
    };
    const refilter = () => {
      const q = pickerInput.value.trim().toLowerCase();
      shown = items.filter((it) => !q || it.label.toLowerCase().includes(q) || (it.key || "").toLowerCase().includes(q));
      active = 0;
      draw();
    };
    picker.hidden = false;
    if (filter) {
      pickerInput.hidden = false;
      pickerInput.placeholder = "Type to filter, ↑ ↓, Enter";
      pickerInput.oninput = refilter;
      pickerInput.focus();
    }
    draw();
    modal = {
      onKey(e) {
        if (e.key === "ArrowDown") { active = Math.min(shown.length - 1, active + 1); draw(); }
        else if (e.key === "ArrowUp") { active = Math.max(0, active - 1); draw(); }
        else if (e.key === "Enter") { const it = shown[active]; close(); if (it) onChoose(it); }
        else return false;
        return true;
      },
    };
  }

  // A picker answered by one key (p: 0-3).
  function keyPicker({ title, help, items, onChoose }) {
    pickerTitle.textContent = title;
    pickerHelp.textContent = help;
    pickerList.innerHTML = "";
    items.forEach((it) => {
      const li = document.createElement("li");
      li.innerHTML = `<kbd></kbd><span></span>`;
      li.children[0].textContent = it.key;
      li.children[1].textContent = it.label;
      li.onclick = () => { close(); onChoose(it); };
      pickerList.appendChild(li);
    });
    picker.hidden = false;
    modal = {
      onKey(e) {
        const it = items.find((x) => x.key === e.key.toLowerCase());
        if (!it) return false;
        close();
        onChoose(it);
        return true;
      },
    };
  }

  // --- actions ---------------------------------------------------------------------------------
  const actions = {
    p(row) {
      keyPicker({
        title: `Priority of #${row.dataset.bugId}`,
        help: "Press 0–3. A new bug becomes triaged.",
        items: ["p0", "p1", "p2", "p3"].map((p, i) => ({ key: String(i), label: p.toUpperCase(), value: p })),
        onChoose: (it) => {
          const body = { priority: it.value };
          if (row.dataset.status === "new") body.status = "triaged";
          patch(row, body, `priority ${it.label}${body.status ? ", triaged" : ""}`);
        },
      });
    },
    t(row) {
      const have = new Set(row.dataset.tags ? row.dataset.tags.split(",") : []);
      listPicker({
        title: `Tag #${row.dataset.bugId}`,
        help: "Enter adds the tag, or removes it when it is already there.",
        items: TAGS.map((t) => ({ key: t.slug, label: t.name, hint: t.slug, checked: have.has(t.slug) })),
        onChoose: (it) => {
          const tags = new Set(have);
          if (tags.has(it.key)) tags.delete(it.key); else tags.add(it.key);
          patch(row, { tags: Array.from(tags) }, `${have.has(it.key) ? "untagged" : "tagged"} ${it.key}`);
        },
      });
    },
    a(row) {
      const items = [{ key: "", label: "— nobody —" }].concat(
        MEMBERS.map((u) => ({ key: u, label: u, checked: u === row.dataset.assignee })));
      listPicker({
        title: `Assign #${row.dataset.bugId}`,
        help: "Type a name, Enter assigns.",
        items,
        onChoose: (it) => patch(row, { assignee: it.key || null }, it.key ? `assigned to ${it.key}` : "unassigned"),
      });
    },
    r(row) {
      // The Resolve dialog shared with the bug page (resolve_dialog.js): resolution, note, and for a
      // fixed bug the datasets that get its failures and how many look-alikes to mine.
      const title = row.querySelector(".title a");
      window.LoupeResolve.open(
        { id: parseInt(row.dataset.bugId, 10), title: title ? title.textContent : "",
          tags: row.dataset.tags ? row.dataset.tags.split(",") : [] },
        {
          onResolved: (bug) => {
            render(row, bug);
            refresh();
            const how = { resolved: "fixed", wont_fix: "won't fix", duplicate: "duplicate" }[bug.status] || bug.status;
            say(`#${bug.id}: ${how}${bug.dataset_flow ? ", failures on their way into the datasets" : ""}`);
          },
          onClose: () => select(index),
        },
      );
    },
    s(row) {
      const next = row.dataset.status === "triaged" ? "in_progress" : "triaged";
      patch(row, { status: next }, STATUS_LABEL[next].toLowerCase());
    },
  };

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (window.LoupeResolve && window.LoupeResolve.isOpen()) return; // the dialog has its own keys
    if (modal) {
      if (e.key === "Escape") { e.preventDefault(); close(); return; }
      if (modal.onKey(e)) e.preventDefault();
      return;
    }
    if (/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
    const row = current();
    if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); select(index + 1); }
    else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); select(index - 1); }
    else if (e.key === "Enter" && row) { window.location = row.dataset.url; }
    else if (actions[e.key] && row) {
      e.preventDefault();
      if (!canTriage) { say("Triage needs the reviewer or manager role in this project.", true); return; }
      actions[e.key](row);
    }
  });

  // --- the week's counts and the Pareto chart, read again after a change ----------------------
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  async function refresh() {
    if (!statsBox) return;
    const q = new URLSearchParams({ project: statsBox.dataset.project, week: statsBox.dataset.week, limit: "1" });
    let view;
    try {
      view = await api("GET", `/api/triage?${q}`);
    } catch (err) {
      return; // the row already shows the change; the counts catch up on the next one
    }
    const set = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
    const n = (v) => Number(v).toLocaleString("en-US");
    set("stat-opened", n(view.stats.opened));
    set("stat-reopened", n(view.stats.reopened));
    set("stat-closed", n(view.stats.closed));
    set("stat-backlog", n(view.totals.backlog));
    set("stat-triage", duration(view.stats.median_time_to_triage_seconds));
    set("stat-resolve", duration(view.stats.median_time_to_resolve_seconds));
    const untagged = view.stats.open_untagged;
    set("pareto-untagged", `${n(untagged)} open bug${untagged === 1 ? "" : "s"} without a tag`);
    drawPareto(view.tags.map((t) => ({ slug: t.slug, name: t.name, count: t.count,
                                       cumulative: Math.round(1000 * t.cumulative_share) / 10 })));
    statsBox.dataset.refreshed = String((parseInt(statsBox.dataset.refreshed || "0", 10) || 0) + 1);
  }

  function drawPareto(rows) {
    const filled = document.getElementById("pareto-filled");
    const empty = document.getElementById("pareto-empty");
    if (filled) filled.hidden = !rows.length;
    if (empty) empty.hidden = !!rows.length;
    const el = document.getElementById("pareto-chart");
    if (!el || !window.Chart || !rows.length) return;
    const data = {
      labels: rows.map((r) => r.name),
      datasets: [
        { type: "bar", label: "Open bugs", data: rows.map((r) => r.count), backgroundColor: "#3559e0", yAxisID: "y" },
        { type: "line", label: "Cumulative %", data: rows.map((r) => r.cumulative), borderColor: "#d92d20",
          backgroundColor: "#d92d20", yAxisID: "y2", tension: 0 },
      ],
    };
    if (chart) {
      chart.data.labels = data.labels;
      chart.data.datasets.forEach((d, i) => { d.data = data.datasets[i].data; });
      chart.update();
      return;
    }
    chart = new Chart(el, {
      data,
      options: {
        maintainAspectRatio: false, animation: false,
        layout: { padding: { left: 8, right: 8 } },
        scales: {
          x: { ticks: { autoSkip: false, maxRotation: 60, minRotation: 0,
                        callback(value) { return short(String(this.getLabelForValue(value))); } } },
          y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "open bugs" } },
          y2: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false },
                ticks: { callback: (v) => `${v}%` } },
        },
      },
    });
  }
})();
