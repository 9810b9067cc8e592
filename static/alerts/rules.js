// The alert rules page (create, edit, mute, delete rules; the on-call rotation) and the alerts page
// (acknowledge, snooze), both through the JSON API (session + CSRF); the page reloads after a change.
//   alerts page: j / k next / previous alert · a acknowledge · s snooze for an hour
(() => {
  const { api, say } = window.Loupe;
  const projectId = Number(location.pathname.split("/")[2]);

  const inHour = () => new Date(Date.now() + 3600 * 1000).toISOString();

  // ---- rules page
  const form = document.getElementById("rule-form");
  const rulesData = document.getElementById("rules-data");
  const rules = rulesData ? JSON.parse(rulesData.textContent) : [];
  const base = `/api/projects/${projectId}/alert-rules`;

  function fill(rule) {
    form.reset();
    form.elements.id.value = rule ? rule.id : "";
    document.getElementById("rule-form-title").textContent = rule ? `Edit “${rule.name}”` : "New rule";
    document.getElementById("rule-save").textContent = rule ? "Save rule" : "Create rule";
    document.getElementById("rule-cancel").hidden = !rule;
    if (!rule) return;
    form.elements.name.value = rule.name;
    form.querySelectorAll("input[name=event_types]").forEach((c) => { c.checked = rule.event_types.includes(c.value); });
    form.querySelectorAll("input[name=channels]").forEach((c) => { c.checked = rule.channels.includes(Number(c.value)); });
    for (const k of ["kind", "tag", "priority_max", "model_version", "min_occurrences", "window_minutes"]) {
      form.elements[k].value = rule.conditions[k] ?? "";
    }
    form.elements.digest_minutes.value = rule.digest_minutes;
    form.elements.action_floor.value = rule.action_floor;
    form.elements.to_on_call.checked = rule.to_on_call;
    form.elements.adaptive.checked = rule.adaptive;
    form.elements.enabled.checked = rule.enabled;
    form.scrollIntoView({ behavior: "smooth" });
    form.elements.name.focus();
  }

  function collect() {
    const f = form.elements;
    const conditions = {};
    for (const k of ["kind", "tag", "priority_max", "model_version"]) if (f[k].value.trim()) conditions[k] = f[k].value.trim();
    for (const k of ["min_occurrences", "window_minutes"]) if (f[k].value) conditions[k] = Number(f[k].value);
    return {
      name: f.name.value.trim(),
      event_types: [...form.querySelectorAll("input[name=event_types]:checked")].map((c) => c.value),
      channels: [...form.querySelectorAll("input[name=channels]:checked")].map((c) => Number(c.value)),
      conditions,
      digest_minutes: Number(f.digest_minutes.value || 0),
      action_floor: Number(f.action_floor.value || 0),
      to_on_call: f.to_on_call.checked,
      adaptive: f.adaptive.checked,
      enabled: f.enabled.checked,
    };
  }

  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const id = form.elements.id.value;
      const err = document.getElementById("rule-error");
      err.textContent = "";
      try {
        await api(id ? "PATCH" : "POST", id ? `${base}/${id}` : base, collect());
        location.reload();
      } catch (ex) {
        err.textContent = ex.message;
      }
    });
    document.getElementById("rule-cancel").addEventListener("click", () => fill(null));
  }

  document.querySelectorAll(".rule-row").forEach((row) => {
    const id = Number(row.dataset.ruleId);
    const rule = rules.find((r) => r.id === id);
    const on = (cls, fn) => { const b = row.querySelector(cls); if (b) b.addEventListener("click", fn); };
    on(".rule-edit", () => fill(rule));
    on(".rule-mute", async () => {
      try { await api("POST", `${base}/${id}/mute`, { until: inHour() }); location.reload(); } catch (ex) { say(ex.message, true); }
    });
    on(".rule-unmute", async () => {
      try { await api("POST", `${base}/${id}/unmute`); location.reload(); } catch (ex) { say(ex.message, true); }
    });
    on(".rule-delete", async () => {
      if (!confirm(`Delete the rule “${rule.name}” and its alerts?`)) return;
      try { await api("DELETE", `${base}/${id}`); location.reload(); } catch (ex) { say(ex.message, true); }
    });
  });

  const onCall = document.getElementById("on-call-form");
  if (onCall) {
    onCall.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = onCall.elements;
      try {
        await api("PUT", `/api/projects/${projectId}/on-call`, {
          members: f.members.value.split(",").map((s) => s.trim()).filter(Boolean),
          handover_weekday: Number(f.handover_weekday.value),
          handover_hour: Number(f.handover_hour.value),
        });
        location.reload();
      } catch (ex) {
        document.getElementById("on-call-error").textContent = ex.message;
      }
    });
  }

  // ---- alerts page
  const items = [...document.querySelectorAll(".alert-row")];
  let current = -1;
  function select(i) {
    if (!items.length) return;
    current = Math.max(0, Math.min(items.length - 1, i));
    items.forEach((el, j) => el.classList.toggle("selected", j === current));
    items[current].scrollIntoView({ block: "nearest" });
  }

  async function acknowledge(row) {
    try {
      const a = await api("POST", `/api/alerts/${row.dataset.alertId}/acknowledge`);
      row.dataset.status = a.status;
      const st = row.querySelector(".alert-status");
      st.textContent = "Acknowledged";
      st.className = "al-st al-st-acknowledged alert-status";
      const b = row.querySelector(".alert-ack");
      if (b) b.remove();
      say("Acknowledged.");
    } catch (ex) { say(ex.message, true); }
  }

  async function snooze(row) {
    try {
      await api("POST", `/api/alerts/${row.dataset.alertId}/snooze`, { until: inHour() });
      if (row.dataset.status !== "acknowledged") {
        row.dataset.status = "snoozed";
        const st = row.querySelector(".alert-status");
        st.textContent = "Snoozed";
        st.className = "al-st al-st-snoozed alert-status";
      }
      say("Snoozed for an hour.");
    } catch (ex) { say(ex.message, true); }
  }

  items.forEach((row, i) => {
    row.addEventListener("click", () => select(i));
    const ack = row.querySelector(".alert-ack");
    if (ack) ack.addEventListener("click", (e) => { e.stopPropagation(); acknowledge(row); });
    row.querySelector(".alert-snooze").addEventListener("click", (e) => { e.stopPropagation(); snooze(row); });
  });

  document.addEventListener("keydown", (e) => {
    if (!items.length || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest("input, textarea, select, [contenteditable]")) return;
    if (e.key === "j") select(current + 1);
    else if (e.key === "k") select(current - 1);
    else if (e.key === "a" && current >= 0) acknowledge(items[current]);
    else if (e.key === "s" && current >= 0) snooze(items[current]);
    else return;
    e.preventDefault();
  });
})();
