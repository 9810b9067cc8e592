// The datasets page: create and edit datasets, add or remove items by a bug or a search, show a
// version's delta rows, all through the datasets API (JSON, session + CSRF). After a change the
// list is re-read from the server and swapped in place (no reload).
//   n new dataset · e edit · a add / remove items · j / k next / previous dataset · Esc close
(() => {
  const { api, say } = window.Loupe;
  const list = document.getElementById("datasets-list");
  const projectId = Number(location.pathname.split("/")[2]);
  const dsDialog = document.getElementById("dataset-dialog");
  const itemsDialog = document.getElementById("items-dialog");
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

  // --- the list: selection and refresh ------------------------------------------------------------
  const cards = () => Array.from(list.querySelectorAll("section.dataset"));
  let selectedId = null;
  function select(card) {
    if (!card) return;
    selectedId = card.dataset.id;
    cards().forEach((c) => c.classList.toggle("selected", c === card));
    card.scrollIntoView({ block: "nearest" });
  }
  const selected = () => cards().find((c) => c.dataset.id === selectedId) || cards()[0];

  async function refresh(flashId) {
    const res = await fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!res.ok) { say(`Could not reload the list (HTTP ${res.status})`, true); return; }
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    list.innerHTML = doc.getElementById("datasets-list").innerHTML;
    const card = flashId && document.getElementById(`dataset-${flashId}`);
    if (card) select(card);
    else if (selectedId) select(selected());
  }

  list.addEventListener("click", (e) => {
    const card = e.target.closest("section.dataset");
    if (!card) return;
    if (!e.target.closest("a, button")) select(card);
    if (e.target.closest(".ds-edit")) { select(card); openDataset(card); }
    if (e.target.closest(".ds-items")) { select(card); openItems(card); }
    const toggle = e.target.closest(".delta-toggle");
    if (toggle) toggleDelta(card, toggle);
  });

  // --- a version's delta rows ------------------------------------------------------------------------
  async function toggleDelta(card, button) {
    const row = button.closest("tr");
    const open = row.nextElementSibling && row.nextElementSibling.classList.contains("delta-detail");
    if (open) {
      row.nextElementSibling.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const detail = document.createElement("tr");
    detail.className = "delta-detail";
    detail.innerHTML = `<td colspan="6" class="muted small">Loading…</td>`;
    row.after(detail);
    button.setAttribute("aria-expanded", "true");
    try {
      const d = await api("GET", `/api/datasets/${card.dataset.id}/versions/${row.dataset.number}/delta`);
      const items = (rows) => rows.length
        ? `<ul>${rows.map((r) => `<li><code>${esc(r.external_id)}</code> ${r.label === null ? '<span class="muted">label hidden</span>' : esc(r.label)}${r.bug ? ` · <a href="/bugs/${r.bug}">bug #${r.bug}</a>` : ""}</li>`).join("")}</ul>`
        : '<p class="muted small">none</p>';
      detail.innerHTML = `<td colspan="6"><div class="grid two"><div><h4 class="delta-add">Added (${d.added.length})</h4>${items(d.added)}</div>` +
        `<div><h4 class="delta-rm">Removed (${d.removed.length})</h4>${items(d.removed)}</div></div>` +
        `<p class="muted small">A relabeled item is removed with its old label and added with its new one.</p></td>`;
    } catch (err) {
      detail.innerHTML = `<td colspan="6" class="error">${esc(err.message)}</td>`;
    }
  }

  // --- keys --------------------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (document.querySelector("dialog[open]")) return; // Esc is the dialog's own
    if (e.target.closest("input, textarea, select")) return;
    const all = cards();
    const i = all.indexOf(selected());
    if (!dsDialog && e.key !== "j" && e.key !== "k") return;
    if (e.key === "n") { e.preventDefault(); openDataset(null); }
    else if (e.key === "e" && all.length) { e.preventDefault(); select(selected()); openDataset(selected()); }
    else if (e.key === "a" && all.length) { e.preventDefault(); select(selected()); openItems(selected()); }
    else if (e.key === "j" && all.length) select(all[Math.min(all.length - 1, i + 1)]);
    else if (e.key === "k" && all.length) select(all[Math.max(0, i - 1)]);
  });
  if (!dsDialog) return; // not a manager: a read-only page

  // --- create / edit dialog ----------------------------------------------------------------------
  const form = document.getElementById("dataset-form");
  const dsError = document.getElementById("dataset-error");
  let editing = null; // the card being edited, or null for a new dataset

  function showError(box, err) {
    box.hidden = false;
    const fields = Object.entries(err.fields || {});
    box.innerHTML = `<strong>${esc(err.message)}</strong>` + (fields.length
      ? `<ul class="ds-refused">${fields.map(([k, v]) => `<li>${esc(k)}: ${esc([].concat(v).map((x) => typeof x === "object" ? JSON.stringify(x) : x).join(", "))}</li>`).join("")}</ul>`
      : "");
  }

  function openDataset(card) {
    editing = card || null;
    form.reset();
    dsError.hidden = true;
    document.getElementById("dataset-dialog-title").textContent = card ? `Edit ${card.dataset.name}` : "New dataset";
    document.getElementById("dataset-save").textContent = card ? "Save" : "Create";
    if (card) {
      form.name.value = card.dataset.name;
      form.description.value = card.dataset.description;
      form.gate.checked = card.dataset.gate === "true";
      form.min_accuracy.value = card.dataset.minAccuracy === "" ? "" : String(Math.round(Number(card.dataset.minAccuracy) * 1000) / 10);
      const tags = new Set(card.dataset.tags ? card.dataset.tags.split(",") : []);
      form.querySelectorAll("input[name=tags]").forEach((i) => { i.checked = tags.has(i.value); });
    }
    dsDialog.showModal();
    form.name.focus();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const raw = form.min_accuracy.value.trim();
    const body = {
      name: form.name.value.trim(),
      description: form.description.value,
      gate: form.gate.checked,
      min_accuracy: raw === "" ? null : Number(raw) / 100,
      tags: Array.from(form.querySelectorAll("input[name=tags]:checked")).map((i) => i.value),
    };
    if (raw !== "" && !Number.isFinite(body.min_accuracy)) {
      showError(dsError, { message: "Minimum accuracy must be a number from 0 to 100.", fields: {} });
      return;
    }
    const button = document.getElementById("dataset-save");
    button.disabled = true;
    try {
      const ds = editing
        ? await api("PATCH", `/api/datasets/${editing.dataset.id}`, body)
        : await api("POST", "/api/datasets", { project: projectId, ...body });
      dsDialog.close();
      await refresh(ds.id);
      say(editing ? `Saved ${ds.name}` : `Created ${ds.name}`);
    } catch (err) {
      showError(dsError, err);
    } finally {
      button.disabled = false;
    }
  });

  // --- add / remove items dialog -------------------------------------------------------------------
  const itemsError = document.getElementById("items-error");
  const itemsDone = document.getElementById("items-done");
  const results = document.getElementById("search-results");
  const resultsBody = results.querySelector("tbody");
  let target = null; // the dataset card being curated
  let lastSearch = null;

  function openItems(card) {
    target = card;
    document.getElementById("items-dialog-title").textContent = `Add or remove items · ${card.dataset.name}`;
    itemsError.hidden = true;
    itemsDone.hidden = true;
    results.hidden = true;
    resultsBody.innerHTML = "";
    lastSearch = null;
    itemsDialog.showModal();
    document.getElementById("bug-id").focus();
  }

  // One curation request; on a refusal listing items, offer to add the others (skip_refused).
  async function curate(body, what) {
    itemsError.hidden = true;
    itemsDone.hidden = true;
    const note = document.getElementById("items-note").value.trim();
    if (note) body.note = note;
    try {
      const res = await api("POST", `/api/datasets/${target.dataset.id}/versions`, body);
      const refused = res.refused.without_ground_truth.length + res.refused.conflicts.length;
      let text = res.changed
        ? `v${res.version.number}: +${res.version.added} −${res.version.removed}${res.version.relabeled ? ` ~${res.version.relabeled}` : ""} (${what}), ${res.version.size} items.`
        : `Nothing changed (${what}): those items are already as asked.`;
      if (refused) text += ` ${refused} refused (no ground truth or a conflict).`;
      const id = target.dataset.id;
      await refresh(id);
      target = document.getElementById(`dataset-${id}`);
      if (lastSearch) await runSearch(lastSearch);
      itemsDone.textContent = text;
      itemsDone.hidden = false;
      say(text);
    } catch (err) {
      showError(itemsError, err);
      const skippable = err.code === "invalid_items" && (err.fields.without_ground_truth || err.fields.conflicts);
      if (skippable) {
        const again = document.createElement("button");
        again.type = "button";
        again.id = "skip-refused";
        again.textContent = "Add the others, skip these";
        again.onclick = () => curate({ ...body, skip_refused: true }, what);
        itemsError.appendChild(again);
      }
    }
  }

  const bugId = () => {
    const n = Number(document.getElementById("bug-id").value);
    if (!Number.isInteger(n) || n < 1) {
      showError(itemsError, { message: "Give a bug number.", fields: {} });
      return null;
    }
    return n;
  };
  document.getElementById("bug-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const n = bugId();
    if (n) curate({ add_bug: n }, `bug #${n}'s failures`);
  });
  document.getElementById("bug-remove").addEventListener("click", () => {
    const n = bugId();
    if (n) curate({ remove_bug: n }, `bug #${n}'s items removed`);
  });

  async function runSearch(params) {
    lastSearch = params;
    const qs = new URLSearchParams({ limit: "100" });
    if (params.q) qs.set("q", params.q);
    if (params.status) qs.set("status", params.status);
    try {
      const res = await api("GET", `/api/datasets/${target.dataset.id}/item-search?${qs}`);
      results.hidden = false;
      document.getElementById("search-all").checked = false;
      resultsBody.innerHTML = res.results.length
        ? res.results.map((r) => `<tr data-external-id="${esc(r.external_id)}" class="${r.in_dataset ? "in-dataset" : ""}">` +
            `<td><input type="checkbox" aria-label="Select ${esc(r.external_id)}"></td>` +
            `<td><code>${esc(r.external_id)}</code>${r.in_dataset ? ' <span class="badge ok">in dataset</span>' : ""}<br><span class="muted small">${esc(r.text)}</span></td>` +
            `<td>${r.ground_truth === null ? '<span class="muted">none</span>' : esc(r.ground_truth)}</td><td class="small">${esc(r.status)}</td></tr>`).join("")
        : '<tr><td colspan="4" class="muted">No item matches.</td></tr>';
      const more = document.getElementById("search-more");
      more.hidden = !res.more;
      more.textContent = "More items match: showing the newest 100. Narrow the search, or add all matches.";
    } catch (err) {
      showError(itemsError, err);
    }
  }
  document.getElementById("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    itemsError.hidden = true;
    runSearch({ q: document.getElementById("search-q").value.trim(), status: document.getElementById("search-status").value });
  });
  document.getElementById("search-all").addEventListener("change", (e) => {
    resultsBody.querySelectorAll("input[type=checkbox]").forEach((c) => { c.checked = e.target.checked; });
  });
  const checked = () => Array.from(resultsBody.querySelectorAll("tr[data-external-id]"))
    .filter((tr) => tr.querySelector("input").checked).map((tr) => tr.dataset.externalId);
  function withChecked(key, what) {
    const ids = checked();
    if (!ids.length) { showError(itemsError, { message: "Select items in the search results first.", fields: {} }); return; }
    curate({ [key]: ids }, `${ids.length} ${what}`);
  }
  document.getElementById("search-add").addEventListener("click", () => withChecked("add", "selected to add"));
  document.getElementById("search-remove").addEventListener("click", () => withChecked("remove", "selected to remove"));
  document.getElementById("search-add-all").addEventListener("click", () => {
    if (!lastSearch) return;
    const search = { q: lastSearch.q, limit: 1000 };
    if (lastSearch.status) search.status = lastSearch.status;
    curate({ add_search: search }, `search "${lastSearch.q}"`);
  });

  document.querySelectorAll(".ds-cancel").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  document.getElementById("new-dataset").addEventListener("click", () => openDataset(null));

})();
