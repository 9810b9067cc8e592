// Loupe labeling page: keyboard-first. Number keys / hotkeys label, s skips, ? shows the keys.
// The next item is leased ahead so it appears at once; submissions go through a queue kept in
// localStorage and are retried until the server has them (never dropped). What is left for this
// annotator comes with every claim, submission and skip (`remaining`). User data is only ever
// written with textContent.
(() => {
  "use strict";
  const cfg = JSON.parse(document.getElementById("label-config").textContent);
  const csrf = document.getElementById("csrf").value;
  const $ = (id) => document.getElementById(id);
  const STORE = `loupe.pending.${cfg.projectId}.${cfg.userId}`;
  const keyToLabel = new Map();
  const labelNames = new Map();
  for (const lab of cfg.labels) {
    labelNames.set(lab.key, lab.name);
    for (const k of lab.keys) keyToLabel.set(k, lab.key);
  }

  let current = null; // the lease on screen: {assignment, item, progress, shownAt}
  let ahead = null; // the lease fetched ahead
  let aheadBlocked = false; // the server said we hold enough leases: wait for a submission to land
  let noneAhead = false; // the last look-ahead found nothing
  let empty = false;
  let pumping = false;
  let pumpAgain = false;
  let pumpTimer = null;
  let pumpDelay = 1000;
  let loadError = "";
  let flushing = false;
  let flushTimer = null;
  let flushDelay = 1000;
  let doneToday = Number(($("done-today").textContent || "0").replace(/[^0-9]/g, "")) || 0;
  let left = cfg.remaining; // {remaining, exact, text}: what is left for this annotator
  let sent = 0; // requests sent so far: a count answered to an older request never replaces a newer one
  let leftAt = 0; // the request whose count is shown
  let pending = load(); // [{id, action: "submit"|"skip", label, seconds, ext, error, failed}]

  function load() {
    try {
      const v = JSON.parse(localStorage.getItem(STORE) || "[]");
      return Array.isArray(v) ? v : [];
    } catch (e) {
      return [];
    }
  }
  function save() {
    try {
      localStorage.setItem(STORE, JSON.stringify(pending));
    } catch (e) {
      /* private mode: the in-memory queue still retries */
    }
  }

  // A 503 (the server lost its database for a moment: nothing was stored) and a network error are
  // tried again after a pause (the server's Retry-After when longer, jittered) before the caller sees
  // them. Both requests this page sends are safe to repeat: a submit already stored answers 409
  // already_submitted, a claim answers the lease already held.
  const RETRY_PAUSES_MS = [500, 1500, 4000];
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  function pauseFor(attempt, res) {
    const after = res ? Number(res.headers.get("Retry-After")) : NaN;
    const base = Math.max(RETRY_PAUSES_MS[attempt], Number.isFinite(after) && after > 0 ? after * 1000 : 0);
    return Math.min(base, 10000) * (0.75 + Math.random() * 0.5);
  }

  async function post(url, body) {
    let res;
    for (let attempt = 0; ; attempt++) {
      try {
        res = await fetch(url, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
          body: JSON.stringify(body || {}),
        });
      } catch (e) {
        if (attempt >= RETRY_PAUSES_MS.length) throw e;
        await pause(pauseFor(attempt, null));
        continue;
      }
      if (res.status !== 503 || attempt >= RETRY_PAUSES_MS.length) break;
      await pause(pauseFor(attempt, res));
    }
    let data = null;
    if (res.status !== 204) {
      try {
        data = await res.json();
      } catch (e) {
        data = null;
      }
    }
    return { status: res.status, data };
  }
  function errorOf(r) {
    const e = r && r.data && r.data.error;
    return { code: e ? e.code : "", message: e ? e.message : `HTTP ${r ? r.status : "error"}` };
  }

  // ---- the queue: current and ahead --------------------------------------------------------
  function inHand() {
    const ids = pending.map((p) => p.id);
    if (current) ids.push(current.assignment.id);
    if (ahead) ids.push(ahead.assignment.id);
    return [...new Set(ids)].slice(0, 10);
  }

  async function next() {
    // While an answer is on its way its item still counts as left on the server: that count is stale.
    const seq = pending.some((x) => !x.failed) ? -1 : ++sent;
    const r = await post(cfg.nextUrl, { exclude: inHand() });
    if (r.status === 200) {
      setLeft(r.data.remaining, seq);
      return r.data;
    }
    if (r.status === 204) return null;
    const err = new Error(errorOf(r).message);
    err.code = errorOf(r).code;
    err.status = r.status;
    throw err;
  }

  function accept(lease) {
    if (lease.progress) setProgress(lease.progress);
    if (!current) show(lease);
    else if (!ahead && lease.assignment.id !== current.assignment.id) ahead = lease;
  }

  // Keep one item on screen and one ahead; one request at a time (the server answers "the lease you
  // hold" to a second concurrent call, so they must not overlap).
  async function pump() {
    if (pumping) {
      pumpAgain = true;
      return;
    }
    pumping = true;
    clearTimeout(pumpTimer);
    try {
      do {
        pumpAgain = false;
        if (!current && ahead) {
          const a = ahead;
          ahead = null;
          show(a);
        }
        if (!current && !empty) {
          const lease = await next();
          if (lease) accept(lease);
          else if (!current) showEmpty();
        }
        if (current && !ahead && !aheadBlocked && !noneAhead) {
          try {
            const lease = await next();
            if (lease) accept(lease);
            else noneAhead = true;
          } catch (e) {
            if (e.code === "too_many_leases") aheadBlocked = true;
            else throw e;
          }
        }
      } while (pumpAgain);
      loadError = "";
      pumpDelay = 1000;
    } catch (e) {
      loadError = `Could not load the next item (${e.message}); retrying in ${Math.round(pumpDelay / 1000)} s.`;
      pumpTimer = setTimeout(pump, pumpDelay);
      pumpDelay = Math.min(pumpDelay * 2, 30000);
    } finally {
      pumping = false;
      renderStatus();
    }
  }

  // ---- items: images and highlighted search terms ------------------------------------------
  const IMAGE_URL = /^(https?:\/\/[^\s]+|\/media\/[^\s]+)\.(png|jpe?g|gif|webp|avif|svg)(\?[^\s]*)?$/i;
  function isImage(key, value) {
    if (typeof value !== "string") return false;
    if (IMAGE_URL.test(value)) return true;
    return (key === "image" || key === "image_url") && /^(https?:\/\/|\/media\/)\S+$/i.test(value);
  }
  const terms = (new URLSearchParams(location.search).get("q") || "")
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 20);
  const termRe = terms.length
    ? new RegExp(`(${terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "gi")
    : null;
  // Text is appended as text nodes with <mark> elements around matches: never parsed as HTML.
  function highlightInto(el, text) {
    el.replaceChildren();
    if (!termRe) {
      el.textContent = text;
      return;
    }
    let last = 0;
    for (const m of text.matchAll(termRe)) {
      if (m.index > last) el.append(document.createTextNode(text.slice(last, m.index)));
      const mark = document.createElement("mark");
      mark.textContent = m[0];
      el.append(mark);
      last = m.index + m[0].length;
    }
    if (last < text.length) el.append(document.createTextNode(text.slice(last)));
  }

  // ---- what the page shows -------------------------------------------------------------------
  function setBusy(busy) {
    $("item-card").setAttribute("aria-busy", busy ? "true" : "false");
    for (const b of document.querySelectorAll(".label-btn")) b.disabled = busy;
    $("skip").disabled = busy;
  }

  function show(lease) {
    current = lease;
    current.shownAt = performance.now();
    empty = false;
    noneAhead = false;
    const item = lease.item || {};
    const payload = item.payload && typeof item.payload === "object" ? item.payload : {};
    $("item-ext").textContent = item.external_id || String(item.id);
    const text = typeof payload.text === "string" ? payload.text : "";
    highlightInto($("item-text"), text);
    $("item-text").hidden = !text;
    const media = $("item-media");
    media.replaceChildren();
    const images = Object.entries(payload).filter(([k, v]) => isImage(k, v));
    for (const [k, v] of images) {
      const img = document.createElement("img");
      img.src = v;
      img.alt = `${k} of item ${item.external_id || item.id}`;
      img.loading = "eager";
      media.append(img);
    }
    media.hidden = images.length === 0;
    const tbody = $("item-fields").querySelector("tbody");
    tbody.replaceChildren();
    for (const [k, v] of Object.entries(payload)) {
      if (k === "text" && text) continue;
      if (isImage(k, v)) continue;
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = k;
      highlightInto(td, typeof v === "string" ? v : JSON.stringify(v));
      tr.append(th, td);
      tbody.append(tr);
    }
    $("item-fields").hidden = tbody.children.length === 0;
    const until = new Date(lease.assignment.expires_at);
    $("lease-note").textContent = isNaN(until) ? "" : `reserved for you until ${until.toLocaleTimeString()}`;
    $("item-loading").hidden = true;
    $("empty").hidden = true;
    setBusy(false);
    if (queuedKey) {
      const q = queuedKey;
      queuedKey = null;
      answer(q.action, q.label, q.key);
    }
  }

  function showLoading() {
    $("item-loading").hidden = false;
    $("item-text").hidden = true;
    $("item-fields").hidden = true;
    $("empty").hidden = true;
    $("item-ext").textContent = "…";
    $("lease-note").textContent = "";
    setBusy(true);
  }

  function showEmpty() {
    empty = true;
    if (queuedKey) {
      say(`Key “${queuedKey.key}” not taken: nothing is left to label.`);
      queuedKey = null;
    }
    $("item-loading").hidden = true;
    $("item-text").hidden = true;
    $("item-fields").hidden = true;
    $("item-ext").textContent = "—";
    $("lease-note").textContent = "";
    const n = left.remaining;
    $("empty-detail").textContent = n === 0
      ? "Every item either has the annotations it needs, or you have labelled or skipped it."
      : `${left.text}, but ${n === 1 && left.exact ? "its" : "their"} remaining slots are reserved by others right now: check again later.`;
    $("empty").hidden = false;
    setBusy(true);
  }

  function setProgress(p) {
    doneToday = Math.max(doneToday, p.done_today);
    renderProgress();
  }
  function setLeft(value, seq) {
    if (!value || typeof value.text !== "string" || seq < leftAt) return;
    leftAt = seq;
    left = value;
    renderProgress();
  }
  function renderProgress() {
    $("done-today").textContent = doneToday.toLocaleString("en-US");
    $("remaining").textContent = left.text;
  }

  async function getJson(url) {
    try {
      const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      return res.ok ? await res.json() : null;
    } catch (e) {
      return null;
    }
  }

  // ---- your last answers, and changing one ---------------------------------------------------
  let answers = []; // [{id, item, external_id, label, created_at, editable}], newest first
  let editing = null; // the answer being changed
  let notice = ""; // a short-lived message (a key not taken, an edit refused)
  let noticeTimer = null;

  function say(text) {
    notice = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      notice = "";
      renderStatus();
    }, 4000);
    renderStatus();
  }

  async function refreshAnswers() {
    const r = await getJson(cfg.answersUrl);
    if (!r || !Array.isArray(r.results)) return;
    answers = r.results;
    renderAnswers();
  }

  function renderAnswers() {
    const ol = $("recent");
    ol.replaceChildren();
    if (!answers.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "None yet.";
      ol.append(li);
      return;
    }
    for (const a of answers) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "recent-btn" + (editing && editing.id === a.id ? " editing" : "");
      b.dataset.annotation = String(a.id);
      const ext = document.createElement("code");
      ext.textContent = a.external_id;
      const lab = document.createElement("span");
      lab.className = "recent-label";
      lab.textContent = labelNames.get(a.label) || a.label;
      b.append(ext, " ", lab);
      if (!a.editable) {
        const d = document.createElement("span");
        d.className = "muted small";
        d.textContent = " decided";
        b.append(d);
        b.title = "Decided: a reviewer changes it now";
      }
      b.addEventListener("click", () => startEdit(a));
      li.append(b);
      ol.append(li);
    }
  }

  function startEdit(a) {
    if (!a) {
      say(pending.length ? "Your last answer is still being saved; press z again in a moment." : "No answer to change yet.");
      return;
    }
    if (!a.editable) {
      say(`Item ${a.external_id} has been decided; ask a reviewer to change its label.`);
      return;
    }
    editing = a;
    const banner = $("edit-banner");
    banner.textContent = `Changing your answer on item ${a.external_id} (now “${labelNames.get(a.label) || a.label}”): press a label key or click a label. Esc goes back to the queue.`;
    banner.hidden = false;
    for (const b of document.querySelectorAll(".label-btn")) b.disabled = false;
    renderAnswers();
  }

  function stopEdit() {
    editing = null;
    $("edit-banner").hidden = true;
    if (!current) setBusy(true);
    renderAnswers();
  }

  async function applyEdit(label) {
    const a = editing;
    stopEdit();
    const r = await post(cfg.editUrl.replace("/0/", `/${a.id}/`), { label });
    if (r.status === 200) {
      say(`Item ${a.external_id}: changed to “${labelNames.get(label) || label}”.`);
    } else {
      say(`Item ${a.external_id} was not changed: ${errorOf(r).message}`);
    }
    refreshAnswers();
  }

  let refreshTimer = null;
  function afterStored() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshAnswers, 150);
  }

  function renderStatus() {
    const ul = $("status");
    ul.replaceChildren();
    const add = (cls, text, onDismiss) => {
      const li = document.createElement("li");
      li.className = `msg ${cls}`;
      const span = document.createElement("span");
      span.textContent = text;
      li.append(span);
      if (onDismiss) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "link";
        b.textContent = "Dismiss";
        b.addEventListener("click", onDismiss);
        li.append(" ", b);
      }
      ul.append(li);
    };
    const waiting = pending.filter((p) => !p.failed);
    if (waiting.length) {
      const err = waiting.find((p) => p.error);
      const n = waiting.length;
      let text = `${n} ${n === 1 ? "answer" : "answers"} not saved yet`;
      if (err) text += ` — ${err.error}; retrying in ${Math.round(flushDelay / 1000)} s`;
      add(err ? "error pending" : "pending", text + ".");
    }
    for (const p of pending.filter((x) => x.failed)) {
      const what = p.action === "skip" ? "Skip" : `Label “${labelNames.get(p.label) || p.label}”`;
      add("error failed", `${what} on item ${p.ext} was not saved: ${p.failed}`, () => {
        pending = pending.filter((x) => x !== p);
        save();
        renderStatus();
      });
    }
    if (loadError) add("error", loadError);
    if (queuedKey) add("pending", `Key “${queuedKey.key}” taken: it applies to the next item when it arrives.`);
    if (notice) add("notice", notice);
  }

  // ---- answering ---------------------------------------------------------------------------
  let queuedKey = null; // {key, action, label}: pressed while the next item was loading

  function answer(action, label, key) {
    if (editing) {
      if (action === "submit") applyEdit(label);
      return;
    }
    if (!current) {
      if (empty) {
        say(`Key “${key || label || action}” not taken: nothing is left to label.`);
      } else if (queuedKey) {
        say(`Key “${key || label || action}” not taken: “${queuedKey.key}” already waits for the next item.`);
      } else {
        queuedKey = { key: key || label || action, action, label };
        renderStatus();
      }
      return;
    }
    const seconds = Math.round((performance.now() - current.shownAt) / 100) / 10;
    pending.push({
      id: current.assignment.id, action, label: label || "", seconds,
      ext: current.item.external_id || String(current.item.id), error: "", failed: "",
    });
    save();
    current = null;
    if (ahead) {
      const a = ahead;
      ahead = null;
      show(a); // at once: it was fetched ahead
    } else {
      showLoading();
    }
    renderStatus();
    flush();
    pump();
  }

  async function flush() {
    if (flushing) return;
    flushing = true;
    clearTimeout(flushTimer);
    try {
      for (;;) {
        const p = pending.find((x) => !x.failed);
        if (!p) break;
        const base = p.action === "skip" ? cfg.skipUrl : cfg.submitUrl;
        const url = base.replace("/0/", `/${p.id}/`);
        let r;
        const seq = ++sent;
        try {
          r = await post(url, p.action === "skip" ? {} : { label: p.label, seconds_spent: p.seconds });
        } catch (e) {
          r = { status: 0, data: null };
        }
        const { code, message } = errorOf(r);
        const stored = r.status === 200 || r.status === 201 || (r.status === 409 && code === `already_${p.action === "skip" ? "skipped" : "submitted"}`);
        if (stored) {
          pending = pending.filter((x) => x !== p);
          save();
          if (r.data) setLeft(r.data.remaining, seq);
          // 201, or 409 already_submitted when an earlier attempt was stored but its answer was lost.
          if (r.status === 201 || (r.status === 409 && p.action !== "skip")) {
            // The server's count when it has one: a claim answered meanwhile may already include
            // this submission (adding 1 to it counted it twice).
            const counted = r.data && Number.isFinite(r.data.done_today) ? r.data.done_today : null;
            doneToday = counted === null ? doneToday + 1 : Math.max(doneToday, counted);
            renderProgress();
          }
          flushDelay = 1000;
          afterStored();
          if (aheadBlocked) {
            aheadBlocked = false;
            pump();
          }
          renderStatus();
          continue;
        }
        const permanent = r.status === 400 || r.status === 404 || r.status === 409 || r.status === 413;
        if (permanent) {
          p.failed = message;
          save();
          renderStatus();
          continue;
        }
        // Network trouble, 5xx, a logged-out session: keep it and try again later.
        p.error = r.status === 0 ? "the network is unreachable" : r.status === 401 || r.status === 403 ? `${message} (log in again; nothing is lost)` : message;
        save();
        renderStatus();
        flushTimer = setTimeout(flush, flushDelay);
        flushDelay = Math.min(flushDelay * 2, 30000);
        break;
      }
    } finally {
      flushing = false;
    }
  }

  // ---- keys --------------------------------------------------------------------------------
  function toggleHelp(force) {
    const help = $("help");
    help.hidden = force === undefined ? !help.hidden : !force;
  }

  function checkAgain() {
    if (!empty) return;
    empty = false;
    showLoading();
    pump();
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (ev.key === "?") {
      toggleHelp();
      ev.preventDefault();
      return;
    }
    if (ev.key === "Escape") {
      toggleHelp(false);
      if (editing) stopEdit();
      return;
    }
    if ((ev.key === "z" || ev.key === "Backspace") && !ev.repeat) {
      ev.preventDefault();
      startEdit(answers[0]);
      return;
    }
    if (ev.repeat) return; // holding a key down must not label a run of items
    if (keyToLabel.has(ev.key)) {
      ev.preventDefault();
      answer("submit", keyToLabel.get(ev.key), ev.key);
    } else if (ev.key === "s") {
      ev.preventDefault();
      if (editing) return;
      answer("skip", "", "s");
    } else if (ev.key === "r") {
      checkAgain();
    }
  });
  for (const b of document.querySelectorAll(".label-btn")) {
    b.addEventListener("click", () => answer("submit", b.dataset.label));
  }
  $("skip").addEventListener("click", () => answer("skip"));
  $("show-keys").addEventListener("click", () => toggleHelp());
  $("undo").addEventListener("click", () => startEdit(answers[0]));
  $("check-again").addEventListener("click", checkAgain);
  window.addEventListener("online", () => flush());

  showLoading();
  renderStatus();
  flush();
  pump();
  refreshAnswers();
})();
