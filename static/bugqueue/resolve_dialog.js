// The Resolve dialog (templates/bugqueue/_resolve_dialog.html), shared by the bug page and the
// triage page. It posts POST /api/bugs/{id}/resolve, then follows the hand-off of a fixed bug to
// its datasets by polling GET /api/bugs/{id}/dataset-flows until the flow is done or failed.
//   LoupeResolve.open({id, title, tags}, {onResolved(bug), onClose(resolved)})
// On the bug page (a #resolve-bug JSON script is present) `r` and [data-resolve-open] buttons open it.
// Keys: the dialog opens on the resolution: f fixed, w won't fix, d duplicate pick it and move to the
// note (or the duplicate's id); Enter resolves (Shift+Enter: a new line in the note), Esc closes.
(() => {
  const dialog = document.getElementById("resolve-dialog");
  if (!dialog) return;
  const form = document.getElementById("resolve-form");
  const $ = (id) => document.getElementById(id);
  const fields = $("resolve-fields"), fixedPart = $("resolve-fixed"), errorBox = $("resolve-error");
  const progress = $("resolve-progress"), submit = $("resolve-submit"), cancel = $("resolve-cancel");
  const dupBox = $("resolve-dup"), dupInput = $("resolve-duplicate"), note = $("resolve-note"), mine = $("resolve-mine");
  const boxes = () => Array.from(dialog.querySelectorAll("input[name=datasets]"));
  const KEYS = { f: "fixed", w: "wont_fix", d: "duplicate" };
  const KEYS_HINT = "<kbd>f</kbd> fixed · <kbd>w</kbd> won't fix · <kbd>d</kbd> duplicate · <kbd>Enter</kbd> resolve · <kbd>Esc</kbd> close";
  const POLL_MS = 800, POLL_LIMIT = 450; // about six minutes, then the bug page has the rest
  let state = null; // {bug, onResolved, onClose, resolved, done, timer, busy}

  const { api } = window.Loupe;
  const words = (err) => (err instanceof window.Loupe.ApiError ? err.describe() : err.message);

  const resolution = () => (form.querySelector("input[name=resolution]:checked") || {}).value;

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function syncResolution() {
    const r = resolution();
    fixedPart.hidden = r !== "fixed";
    dupBox.hidden = r !== "duplicate";
  }

  function open(bug, { onResolved, onClose } = {}) {
    if (state) close();
    state = { bug, onResolved, onClose, resolved: false, done: false, timer: null, busy: false, polls: 0 };
    $("resolve-title").textContent = `Resolve #${bug.id}`;
    $("resolve-bug-title").textContent = bug.title || "";
    form.reset();
    fields.hidden = false;
    progress.hidden = true;
    showError("");
    submit.textContent = "Resolve";
    submit.disabled = false;
    $("resolve-keys").innerHTML = KEYS_HINT;
    cancel.hidden = false;
    const tags = new Set(bug.tags || []);
    boxes().forEach((box) => {
      const follows = (box.dataset.tags ? box.dataset.tags.split(",") : []).filter((t) => tags.has(t));
      const mark = box.closest("label").querySelector(".bq-follows");
      box.checked = follows.length > 0;
      box.disabled = follows.length > 0; // datasets following a tag of the bug always get its failures
      box.closest("label").classList.toggle("follows", follows.length > 0);
      mark.hidden = !follows.length;
      mark.textContent = follows.length ? `follows ${follows.join(", ")}: always included` : "";
    });
    syncResolution();
    dialog.showModal();
    form.querySelector("input[name=resolution]:checked").focus(); // f / w / d, then the note; Enter resolves
  }

  function close() {
    if (!state) return;
    const s = state;
    state = null;
    clearTimeout(s.timer);
    // Leave no focus inside the closed dialog: a note field still focused would swallow the next `r`.
    if (dialog.contains(document.activeElement)) document.activeElement.blur();
    if (dialog.open) dialog.close();
    if (s.onClose) s.onClose(s.resolved);
  }

  async function send() {
    if (!state || state.busy) return;
    if (state.resolved) { close(); return; }
    const r = resolution();
    const body = { resolution: r, note: note.value.trim() };
    if (r === "duplicate") {
      const id = dupInput.value.trim().replace(/^#/, "");
      if (!/^\d+$/.test(id)) { showError("Give the id of the bug this one duplicates."); dupInput.focus(); return; }
      body.duplicate_of = parseInt(id, 10);
    }
    if (r === "fixed") {
      // Datasets following the bug's tags are added by the server anyway; send the ones chosen.
      body.datasets = boxes().filter((b) => b.checked && !b.disabled).map((b) => parseInt(b.value, 10));
      const n = mine.value.trim() === "" ? 0 : Number(mine.value);
      if (!Number.isInteger(n) || n < 0 || n > 10000) {
        showError("Look-alikes to mine: a whole number from 0 to 10,000."); mine.focus(); return;
      }
      body.mine_similar = n;
    }
    const s = state;
    s.busy = true;
    submit.disabled = true;
    showError("");
    try {
      const bug = await api("POST", `/api/bugs/${s.bug.id}/resolve`, body);
      s.resolved = true;
      if (s.onResolved) s.onResolved(bug);
      fields.hidden = true;
      cancel.hidden = true;
      submit.textContent = "Close";
      const label = { fixed: "fixed", wont_fix: "won't fix", duplicate: `duplicate of #${body.duplicate_of}` }[r];
      s.said = `Resolved as ${label}${bug.changed ? "" : " (it already was)"}`;
      $("resolve-keys").textContent = "Enter or Esc: close";
      if (bug.dataset_flow) {
        progress.hidden = false;
        $("flow-text").textContent = `${s.said}; its failures are on their way into the datasets.`;
        draw({ status: "queued", added: 0, pending: 0, conflicts: 0, mined: 0, versions: [] }, s);
        poll(s, bug.dataset_flow);
      } else {
        progress.hidden = false;
        $("flow-status").textContent = "resolved";
        $("flow-status").className = "badge ok";
        $("flow-text").textContent = r === "fixed"
          ? `${s.said}. No dataset step: no dataset was chosen or follows its tags, and no look-alikes were asked for.`
          : `${s.said}.`;
        progress.querySelector(".bq-flow-counts").hidden = true;
        $("flow-versions").textContent = "";
      }
    } catch (err) {
      showError(words(err));
    } finally {
      s.busy = false;
      submit.disabled = false;
      if (s.resolved) submit.focus();
    }
  }

  function datasetName(id) {
    const box = boxes().find((b) => parseInt(b.value, 10) === id);
    return box ? { name: box.dataset.name, url: box.dataset.url } : { name: `dataset ${id}`, url: null };
  }

  function draw(flow, s) {
    progress.querySelector(".bq-flow-counts").hidden = false;
    if (flow.status === "done") $("flow-text").textContent = `${s.said}; the hand-off to datasets is done.`;
    else if (flow.status === "running") $("flow-text").textContent = `${s.said}; adding its failures and mining look-alikes…`;
    const st = $("flow-status");
    st.textContent = flow.status;
    st.className = `badge ${flow.status === "done" ? "ok" : flow.status === "failed" ? "bad" : "warn"}`;
    for (const k of ["added", "pending", "conflicts", "mined"]) $(`flow-${k}`).textContent = (flow[k] || 0).toLocaleString();
    const out = $("flow-versions");
    out.textContent = "";
    if (flow.status === "failed") {
      out.className = "small error";
      out.textContent = `The hand-off failed: ${flow.error || "unknown error"}. Resolve again as fixed to retry.`;
      return;
    }
    out.className = "small";
    if (!flow.versions.length) {
      if (flow.status === "done") out.textContent = "No new dataset version: nothing was ready to add yet (waiting items join later, in a batch).";
      return;
    }
    out.append("New version" + (flow.versions.length > 1 ? "s: " : ": "));
    flow.versions.forEach((v, i) => {
      const d = datasetName(v.dataset);
      const a = document.createElement("a");
      a.className = "flow-version";
      a.href = d.url || "#";
      a.textContent = `${d.name} v${v.number}`;
      if (i) out.append(", ");
      out.append(a);
    });
  }

  async function poll(s, flowId) {
    if (state !== s) return;
    s.polls += 1;
    try {
      const flows = await api("GET", `/api/bugs/${s.bug.id}/dataset-flows`);
      const flow = flows.find((f) => f.id === flowId);
      if (state !== s) return;
      if (flow) {
        draw(flow, s);
        if (flow.status === "done" || flow.status === "failed") { s.done = true; return; }
      }
    } catch (err) {
      if (state !== s) return;
      showError(`Progress unavailable for now: ${words(err)}`);
    }
    if (s.polls >= POLL_LIMIT) {
      $("flow-text").textContent = "Still running: the bug page shows the progress when it is done.";
      return;
    }
    s.timer = setTimeout(() => poll(s, flowId), POLL_MS);
  }

  form.addEventListener("change", (e) => { if (e.target.name === "resolution") syncResolution(); });
  form.addEventListener("submit", (e) => { e.preventDefault(); send(); });
  dialog.addEventListener("click", (e) => {
    if (e.target.closest("[data-close]")) { e.preventDefault(); close(); }
  });
  dialog.addEventListener("cancel", (e) => { e.preventDefault(); close(); }); // Esc
  dialog.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target.tagName === "TEXTAREA" || (e.target.tagName === "INPUT" && e.target.type !== "radio" && e.target.type !== "checkbox");
    if (KEYS[e.key] && !typing && state && !state.resolved) {
      e.preventDefault();
      form.querySelector(`input[name=resolution][value=${KEYS[e.key]}]`).checked = true;
      syncResolution();
      (KEYS[e.key] === "duplicate" ? dupInput : note).focus();
      return;
    }
    if (e.key !== "Enter") return;
    const t = e.target;
    if (t.tagName === "TEXTAREA" && e.shiftKey) return; // a new line in the note
    if (t.tagName === "BUTTON" || t.tagName === "A") return; // their own action
    e.preventDefault();
    send();
  });

  window.LoupeResolve = { open, close, isOpen: () => state !== null };

  // The bug page: `r` (or the Resolve button) opens the dialog for the page's bug.
  const own = document.getElementById("resolve-bug");
  if (!own) return;
  const bug = JSON.parse(own.textContent);
  const openOwn = () => open(bug, { onClose: (resolved) => { if (resolved) window.location.reload(); } });
  document.querySelectorAll("[data-resolve-open]").forEach((b) => b.addEventListener("click", openOwn));
  document.addEventListener("keydown", (e) => {
    if (e.key !== "r" || e.ctrlKey || e.metaKey || e.altKey || state) return;
    const active = document.activeElement;
    const typing = /INPUT|TEXTAREA|SELECT/.test(active.tagName) || active.isContentEditable;
    if (typing && !dialog.contains(active)) return; // typing elsewhere on the page (not the closed dialog's fields)
    e.preventDefault();
    openOwn();
  });
})();
