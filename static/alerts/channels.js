// The channels page: "Send test" posts to the JSON API (POST …/channels/{id}/test), then reads the
// delivery log (GET …/channels/{id}/deliveries) until the test is delivered, failed or dead, shows
// the outcome on the channel's row and refreshes the log below. Delete asks first. Without this
// script every form still works (the page answers the plain POSTs).
(() => {
  const projectId = JSON.parse(document.getElementById("project-id").textContent);
  const { api } = window.Loupe;
  const base = `/api/projects/${projectId}/channels`;
  const POLL_MS = 700;
  const POLL_MAX = 30;

  function describe(d) {
    const code = d.last_status_code ? ` (HTTP ${d.last_status_code})` : "";
    if (d.status === "delivered") return `Test delivered${code}.`;
    if (d.status === "pending") return "Test queued: waiting for a worker…";
    const why = d.last_error ? `: ${d.last_error}` : "";
    return d.status === "dead" ? `Test gave up${code}${why}` : `Test failed${code}${why}; it will be retried.`;
  }

  async function refreshLog(channelId) {
    const res = await fetch(`?log=${channelId}`, { credentials: "same-origin" });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const fresh = doc.getElementById("log");
    const current = document.getElementById("log");
    if (!fresh) return;
    if (current) current.replaceWith(fresh); else document.getElementById("channels").after(fresh);
    history.replaceState(null, "", `?log=${channelId}#log`);
  }

  async function sendTest(button) {
    const channelId = button.dataset.channel;
    const out = document.querySelector(`.test-result[data-channel="${channelId}"]`);
    out.hidden = false;
    out.className = "test-result muted";
    out.textContent = "Sending a test…";
    button.disabled = true;
    try {
      let d = await api("POST", `${base}/${channelId}/test`);
      for (let i = 0; d.status === "pending" && i < POLL_MAX; i += 1) {
        out.textContent = describe(d);
        await new Promise((r) => setTimeout(r, POLL_MS));
        const page = await api("GET", `${base}/${channelId}/deliveries?page_size=20`);
        d = page.results.find((x) => x.id === d.id) || d;
      }
      out.textContent = describe(d);
      out.className = `test-result ${d.status === "delivered" ? "ok-text" : d.status === "pending" ? "muted" : "error"}`;
      const last = document.querySelector(`tr.channel-row[data-channel="${channelId}"] .last`);
      if (last) {
        last.replaceChildren();
        const badge = document.createElement("span");
        badge.className = `st st-${d.status}`;
        badge.textContent = d.status;
        last.append(badge, d.last_status_code ? ` HTTP ${d.last_status_code} ` : " ");
        const when = document.createElement("span");
        when.className = "muted";
        when.textContent = "just now";
        last.append(when);
      }
      await refreshLog(channelId);
    } catch (e) {
      out.textContent = e.message;
      out.className = "test-result error";
    } finally {
      button.disabled = false;
    }
  }

  document.querySelectorAll("form.test-form").forEach((form) => {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      sendTest(form.querySelector("button.test-btn"));
    });
  });
  document.querySelectorAll("form.delete-form").forEach((form) => {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(`Delete the channel ${form.dataset.name} and its delivery log?`)) e.preventDefault();
    });
  });
  const secret = document.getElementById("secret");
  if (secret) secret.focus();
})();
