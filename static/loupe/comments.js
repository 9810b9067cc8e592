// Comments on an item: fills every #item-comments / .item-comments[data-item] container with the
// comments the reader may see (GET /api/items/{id}/comments) and a form to post one (Ctrl+Enter
// posts; @username mentions a project member, who gets an email). The author may delete their own.
// Pages that add a container later call window.LoupeComments.mount(container); a posted comment
// announces itself with a bubbling "loupe:comment-posted" event ({detail: {item}}). Pages link
// loupe/comments.css themselves (a URL derived from this script's would miss the hashed name).
(function () {
  "use strict";

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (err) { return ""; }
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  // The text with @mentions emphasised, built from text nodes (never HTML).
  function body(text) {
    const p = el("p", { class: "cm-text" });
    text.split(/(@[\w.+-]+)/).forEach(function (part) {
      if (/^@[\w.+-]+$/.test(part)) p.appendChild(el("strong", { class: "cm-mention", text: part }));
      else if (part) p.appendChild(document.createTextNode(part));
    });
    return p;
  }

  function errorText(res, data) {
    const e = data && data.error;
    if (e && e.fields && e.fields.text) return e.fields.text.join(" ");
    if (e && e.message) return e.message;
    return "Could not reach the server (" + (res ? res.status : "offline") + "). Try again.";
  }

  async function call(method, url, payload) {
    const opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": csrfToken() } };
    if (payload) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(payload); }
    let res = null, data = null;
    try {
      res = await fetch(url, opts);
      if (res.status !== 204) data = await res.json();
    } catch (err) { /* network error or non-JSON answer */ }
    return { ok: !!(res && res.ok), res: res, data: data };
  }

  function mount(box) {
    if (box.dataset.ready) return;
    box.dataset.ready = "1";
    const item = box.dataset.item;
    const url = "/api/items/" + item + "/comments";
    const count = el("span", { class: "badge", "aria-live": "polite" });
    const list = el("ul", { class: "cm-list", "aria-label": "Comments" });
    const status = el("p", { class: "muted cm-status", text: "Loading comments…" });
    const error = el("p", { class: "msg error cm-error", role: "alert", hidden: "" });
    const area = el("textarea", { name: "text", rows: "3", maxlength: "5000", "aria-label": "New comment",
      placeholder: "Add a comment. @username mentions a project member." });
    const button = el("button", { type: "submit", text: "Post" });
    const hint = el("span", { class: "muted small", text: "Ctrl+Enter posts" });
    const form = el("form", { class: "cm-form" }, [area, el("div", { class: "row between" }, [hint, button])]);
    box.replaceChildren(el("section", { class: "card cm" }, [
      el("div", { class: "row between" }, [el("h2", { text: "Comments" }), count]), status, list, error, form]));
    box.classList.add("item-comments");

    function render(rows) {
      count.textContent = String(rows.length);
      status.textContent = rows.length ? "" : "No comments yet. Ask a question or note why the label is hard.";
      status.hidden = !!rows.length;
      list.replaceChildren.apply(list, rows.map(function (r) {
        const when = new Date(r.created_at);
        const meta = el("div", { class: "cm-meta small" }, [
          el("strong", { text: r.author }), el("span", { class: "muted", text: " · " + when.toLocaleString() })]);
        if (r.own) {
          const del = el("button", { type: "button", class: "link cm-delete", text: "Delete", "aria-label": "Delete your comment" });
          del.addEventListener("click", async function () {
            if (!window.confirm("Delete this comment?")) return;
            const out = await call("DELETE", "/api/comments/" + r.id);
            if (out.ok) load(); else show(errorText(out.res, out.data));
          });
          meta.appendChild(del);
        }
        return el("li", { class: "cm-item", "data-comment": String(r.id) }, [meta, body(r.text)]);
      }));
    }

    function show(message) { error.textContent = message; error.hidden = !message; }

    async function load() {
      const out = await call("GET", url);
      if (out.ok) { show(""); render(out.data); } else { status.textContent = ""; show(errorText(out.res, out.data)); }
    }

    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      if (!area.value.trim()) { show("Write something first."); area.focus(); return; }
      button.disabled = true;
      const out = await call("POST", url, { text: area.value });
      button.disabled = false;
      if (out.ok) {
        area.value = "";
        show("");
        load();
        box.dispatchEvent(new CustomEvent("loupe:comment-posted", { bubbles: true, detail: { item: item } }));
      } else show(errorText(out.res, out.data));
    });
    area.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
      e.stopPropagation(); // typing here never triggers the page's shortcuts
    });
    load();
  }

  function mountAll() { document.querySelectorAll("#item-comments[data-item], .item-comments[data-item]").forEach(mount); }
  window.LoupeComments = { mount: mount };
  mountAll();
  document.addEventListener("htmx:afterSwap", mountAll);
})();
