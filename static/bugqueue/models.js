// The models page: pick a model row, open the promote dialog, see the gate's answer for the chosen
// stage (GET …/models/{version}/gate), then promote (POST …/promote), with an override reason when
// the gate refuses. Keys: j / k select · p promote · n register · e evaluate · 1–5 pick a stage in
// the dialog · Enter promotes · Esc closes.
(() => {
  const projectId = JSON.parse(document.getElementById("project-id").textContent);
  const { api, say } = window.Loupe;
  const dialog = document.getElementById("promote");
  const table = document.getElementById("models-table");
  const rows = () => (table ? Array.from(table.querySelectorAll("tr.model-row")) : []);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const base = (version) => `/api/projects/${projectId}/models/${encodeURIComponent(version)}`;
  let index = -1;

  function select(i) {
    const all = rows();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((r, j) => r.classList.toggle("selected", j === index));
    all[index].scrollIntoView({ block: "nearest" });
  }
  if (table) {
    table.addEventListener("click", (e) => {
      const row = e.target.closest("tr.model-row");
      if (row && !e.target.closest("a, summary")) select(rows().indexOf(row));
    });
  }

  // --- the promote dialog ---------------------------------------------------------------------
  const state = { version: null, current: null, stage: null, answer: null, seq: 0 };
  const stageButtons = dialog ? Array.from(dialog.querySelectorAll("#promote-stages button")) : [];
  const answerBox = dialog && dialog.querySelector("#gate-answer");
  const overrideBox = dialog && dialog.querySelector("#override-box");
  const overrideInput = dialog && dialog.querySelector("#override-reason");
  const noteInput = dialog && dialog.querySelector("#promote-note");
  const errorBox = dialog && dialog.querySelector("#promote-error");
  const go = dialog && dialog.querySelector("#promote-go");

  function refreshButton() {
    const a = state.answer;
    const needsOverride = a && !a.allowed && a.gated;
    overrideBox.hidden = !needsOverride;
    go.textContent = needsOverride ? "Override and promote" : "Promote";
    go.disabled = !a || a.stage === state.current || (needsOverride && !overrideInput.value.trim());
  }

  function renderAnswer(a) {
    if (!a.gated) {
      answerBox.innerHTML = `<p class="gate-verdict ok">No gate for ${esc(a.stage)}: the move is recorded in the history.</p>`;
      return;
    }
    const head = a.allowed
      ? `<p class="gate-verdict ok">The gate allows ${esc(a.stage)}.</p>`
      : `<p class="gate-verdict bad">The gate refuses ${esc(a.stage)}.</p>`;
    const baseline = `<p class="muted small">Compared with ${a.baseline ? `<code>${esc(a.baseline)}</code> (the baseline now)` : "no baseline (nothing promoted yet)"}.</p>`;
    const items = a.datasets.length
      ? a.datasets.map((d) => `<li class="gate-row ${d.passed ? "pass" : "fail"}" data-dataset="${d.dataset}">
          <span class="badge ${d.passed ? "ok" : "bad"}">${d.passed ? "pass" : "fail"}</span>
          <strong>${esc(d.name)}</strong> v${d.version}
          ${d.evaluation ? `· <a href="/evaluations/${d.evaluation}">evaluation #${d.evaluation}</a>` : ""}
          ${d.reasons.length ? `<br><span class="small ${d.passed ? "muted" : "error"}">${d.reasons.map(esc).join("; ")}</span>` : ""}
        </li>`).join("")
      : `<li class="muted">No gate dataset: nothing to check.</li>`;
    // A result against an older baseline or dataset version can be recomputed from the predictions
    // Loupe kept (POST /api/evaluations/rerun), without uploading them again.
    const stale = !a.allowed && a.datasets.some((d) => !d.passed && d.reasons.some((r) => /re-evaluate|not evaluated/.test(r)));
    const rerun = stale
      ? `<p><button type="button" id="gate-rerun">Re-evaluate from stored predictions</button>
         <span class="muted small">on the latest version of every dataset, against the baseline now</span></p>`
      : "";
    answerBox.innerHTML = `${head}${baseline}<ul class="gate-list">${items}</ul>${rerun}`;
    const button = answerBox.querySelector("#gate-rerun");
    if (button) button.addEventListener("click", () => rerunStored(button));
  }

  async function rerunStored(button) {
    button.disabled = true;
    button.textContent = "Re-evaluating…";
    errorBox.hidden = true;
    try {
      const ev = await api("POST", "/api/evaluations/rerun", { project: projectId, model_version: state.version });
      say(`Evaluation #${ev.id}: ${ev.passed ? "passed" : "did not pass"}`, !ev.passed);
      pickStage(state.stage); // ask the gate again
    } catch (e) {
      errorBox.textContent = e.message;
      errorBox.hidden = false;
      button.disabled = false;
      button.textContent = "Re-evaluate from stored predictions";
    }
  }

  async function pickStage(stage) {
    state.stage = stage;
    state.answer = null;
    stageButtons.forEach((b) => {
      const on = b.dataset.stage === stage;
      b.classList.toggle("on", on);
      b.setAttribute("aria-checked", on ? "true" : "false");
    });
    errorBox.hidden = true;
    refreshButton();
    if (stage === state.current) {
      answerBox.innerHTML = `<p class="muted">${esc(state.version)} is already ${esc(stage)}.</p>`;
      return;
    }
    answerBox.innerHTML = `<p class="muted">Asking the gate…</p>`;
    const seq = ++state.seq;
    try {
      const a = await api("GET", `${base(state.version)}/gate?stage=${encodeURIComponent(stage)}`);
      if (seq !== state.seq) return; // another stage was picked meanwhile
      state.answer = a;
      renderAnswer(a);
    } catch (e) {
      if (seq !== state.seq) return;
      answerBox.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
    refreshButton();
  }

  function openDialog(row) {
    if (!dialog || !row) return;
    state.version = row.dataset.version;
    state.current = row.dataset.stage;
    dialog.querySelector("#promote-title").textContent = `Promote ${state.version} (now ${state.current})`;
    overrideInput.value = "";
    noteInput.value = "";
    stageButtons.forEach((b) => { b.disabled = b.dataset.stage === state.current; });
    dialog.hidden = false;
    pickStage(state.current === "production" ? "retired" : "production");
    (stageButtons.find((b) => !b.disabled) || go).focus();
  }

  function closeDialog() {
    if (dialog) dialog.hidden = true;
    state.seq++;
  }

  async function promote() {
    if (go.disabled) return;
    go.disabled = true;
    errorBox.hidden = true;
    const body = { stage: state.stage, note: noteInput.value.trim() };
    if (state.answer && !state.answer.allowed && state.answer.gated) body.override_reason = overrideInput.value.trim();
    try {
      const res = await api("POST", `${base(state.version)}/promote`, body);
      say(`${res.model.version} is now ${res.model.stage}`);
      closeDialog();
      window.location.reload();
    } catch (e) {
      errorBox.textContent = e.message;
      errorBox.hidden = false;
      if (e.status === 409 && e.code === "gate_failed") pickStage(state.stage); // the answer changed: show it
      else refreshButton();
    }
  }

  if (dialog) {
    stageButtons.forEach((b) => b.addEventListener("click", () => pickStage(b.dataset.stage)));
    overrideInput.addEventListener("input", refreshButton);
    go.addEventListener("click", promote);
    dialog.querySelector("#promote-cancel").addEventListener("click", closeDialog);
    dialog.addEventListener("click", (e) => { if (e.target === dialog) closeDialog(); });
    document.querySelectorAll(".promote-btn").forEach((b) =>
      b.addEventListener("click", () => {
        const row = b.closest("tr.model-row");
        select(rows().indexOf(row));
        openDialog(row);
      }));
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target.closest && e.target.closest("input, textarea, select");
    if (dialog && !dialog.hidden) {
      if (e.key === "Escape") { e.preventDefault(); closeDialog(); return; }
      if (e.key === "Enter" && !e.target.closest("textarea, button, a")) {
        e.preventDefault(); promote(); return;
      }
      if (!typing && /^[1-9]$/.test(e.key)) {
        const b = stageButtons[Number(e.key) - 1];
        if (b && !b.disabled) { e.preventDefault(); pickStage(b.dataset.stage); }
      }
      return;
    }
    if (typing) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); select(index + 1); }
    else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); select(index - 1); }
    else if (e.key === "p" && dialog) { e.preventDefault(); if (index < 0) select(0); openDialog(rows()[index]); }
    else if (e.key === "n") { const el = document.getElementById("register-version"); if (el) { e.preventDefault(); el.focus(); } }
    else if (e.key === "e") { const el = document.getElementById("evaluate-version"); if (el) { e.preventDefault(); el.focus(); } }
  });

  if (document.getElementById("evaluate-error")) document.getElementById("evaluate").scrollIntoView();
  else if (rows().length) select(0);
})();
