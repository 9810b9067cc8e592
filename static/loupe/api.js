// What every page script shares: `Loupe.api(method, url, body)` calls the JSON API with the session
// and the CSRF token and answers the parsed body, or throws a `Loupe.ApiError` whose message is in
// words (Loupe's one error shape `{"error": {"code", "message", "fields"}}`, or a sentence for a
// network failure or a body that is not JSON); `Loupe.say(text, isError)` shows a short toast.
// Loaded by templates/base.html before any page script.
(() => {
  "use strict";

  function csrf() {
    const meta = document.querySelector("meta[name=csrf-token]");
    if (meta && meta.content) return meta.content;
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  const FALLBACK = {
    400: "The server could not read this request",
    401: "You are signed out: sign in again",
    403: "You are not allowed to do this",
    404: "Not found: it may have been deleted",
    409: "This changed meanwhile: reload and try again",
    413: "This is too large",
    429: "Too many requests: wait a moment and try again",
  };

  function fallbackMessage(status) {
    if (FALLBACK[status]) return `${FALLBACK[status]} (HTTP ${status}).`;
    if (status >= 500) return `The server had a problem (HTTP ${status}); nothing was changed. Try again.`;
    return `The request failed (HTTP ${status}).`;
  }

  function fieldLines(fields) {
    const lines = [];
    for (const [key, value] of Object.entries(fields || {})) {
      const text = [].concat(value).map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(" ");
      lines.push(key === "non_field_errors" || key === "detail" ? text : `${key}: ${text}`);
    }
    return lines;
  }

  // status 0: the server was not reached.
  class ApiError extends Error {
    constructor(status, error) {
      const e = error && typeof error === "object" ? error : {};
      super(e.message || (status ? fallbackMessage(status) : "Could not reach the server: check the connection and try again."));
      this.name = "ApiError";
      this.status = status;
      this.code = e.code || "";
      this.fields = e.fields || {};
      this.body = e;
    }

    // The message and every field problem it does not already say, in one line.
    describe() {
      const extra = fieldLines(this.fields).filter((line) => !this.message.includes(line));
      return [this.message].concat(extra).join(" · ");
    }
  }

  async function api(method, url, body) {
    let res;
    try {
      res = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, null);
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, data && data.error);
    return data === null ? {} : data;
  }

  function toastBox() {
    let box = document.getElementById("toast");
    if (!box) {
      box = document.createElement("div");
      box.id = "toast";
      box.className = "bq-toast";
      box.setAttribute("role", "status");
      box.hidden = true;
      document.body.append(box);
    }
    return box;
  }

  function say(text, isError) {
    const box = toastBox();
    box.textContent = text;
    box.classList.toggle("error", !!isError);
    box.hidden = false;
    clearTimeout(say.timer);
    say.timer = setTimeout(() => { box.hidden = true; }, isError ? 6000 : 2500);
  }

  window.Loupe = Object.assign(window.Loupe || {}, { api, say, csrf, ApiError });
})();
