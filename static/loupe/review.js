// Review page keys: a label's hotkey decides it, n focuses the note, g previews the note appended to
// a label's guideline (Enter decides and saves, Esc cancels: nothing is saved before Enter), u undoes
// the last decision while its window lasts, s skips, ? shows the keys, Enter starts. Keys typed into
// the note stay in the note (Esc leaves it).
(function () {
  "use strict";
  var previewing = null; // the label button whose guideline the preview shows
  var confirmed = false; // set while the preview's confirmed decision is being submitted
  var toastTimer = null;

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT" || el.tagName === "SELECT" || el.isContentEditable);
  }
  function byId(id) { return document.getElementById(id); }
  function labelButtons() {
    var form = byId("resolve-form");
    return form ? form.querySelectorAll("button[data-hotkey]") : [];
  }
  function note() {
    var el = byId("review-note");
    return el ? el.value.trim() : "";
  }

  // --- guideline preview ---------------------------------------------------------------------
  function defaultLabel() {
    var form = byId("resolve-form");
    return form && (form.querySelector("button[data-hotkey].suggested") || form.querySelector("button[data-hotkey]"));
  }
  function showPreview(button) {
    var box = byId("guideline-preview");
    if (!box || !button) return;
    previewing = button;
    var append = byId("review-append");
    if (append) append.checked = true;
    box.querySelectorAll(".gp-name").forEach(function (el) { el.textContent = button.dataset.name; });
    var text = byId("guideline-preview-text");
    text.textContent = "";
    var current = (button.dataset.guideline || "").replace(/\s+$/, "");
    var missing = !note();
    if (current) {
      text.appendChild(document.createTextNode(current + "\n"));
    } else {
      var none = document.createElement("span");
      none.className = "gp-none";
      none.textContent = "No guideline yet: your note becomes its first line.\n";
      text.appendChild(none);
    }
    var mark = document.createElement("mark");
    mark.id = "guideline-preview-added";
    mark.textContent = "- " + (note() || "…");
    text.appendChild(mark);
    byId("guideline-preview-nonote").hidden = !missing;
    byId("guideline-preview-confirm").disabled = missing;
    var versions = byId("guideline-preview-versions");
    if (versions) versions.href = versions.dataset.base + button.value;
    box.hidden = false;
    (missing ? byId("guideline-preview-cancel") : byId("guideline-preview-confirm")).focus();
  }
  function closePreview(uncheck) {
    var box = byId("guideline-preview");
    if (box) box.hidden = true;
    if (uncheck) {
      var append = byId("review-append");
      if (append) append.checked = false;
    }
    previewing = null;
  }
  function confirmPreview() {
    if (!previewing || !note()) return;
    var button = previewing;
    closePreview(false);
    confirmed = true;
    button.click();
    confirmed = false;
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest ? ev.target.closest("button, input") : null;
    if (!t) return;
    if (t.id === "guideline-preview-confirm") { ev.preventDefault(); confirmPreview(); return; }
    if (t.id === "guideline-preview-cancel") { ev.preventDefault(); closePreview(true); return; }
    // A label chosen with "append to guideline" on shows the preview first; only Enter saves.
    if (t.matches("#resolve-form button[data-hotkey]") && !confirmed) {
      var append = byId("review-append");
      if (append && append.checked) { ev.preventDefault(); showPreview(t); }
    }
  }, true);
  document.addEventListener("change", function (ev) {
    if (ev.target.id !== "review-append") return;
    if (ev.target.checked) showPreview(defaultLabel());
    else closePreview(false);
  });

  // --- undo ----------------------------------------------------------------------------------
  function armToast() {
    if (toastTimer) { clearTimeout(toastTimer); toastTimer = null; }
    var toast = byId("review-undo-toast");
    if (!toast) return;
    var left = parseInt(toast.dataset.secondsLeft, 10);
    if (!(left >= 0)) return;
    toastTimer = setTimeout(function () {
      var minutes = toast.dataset.minutes;
      toast.classList.add("expired");
      toast.textContent = "Too late to undo: decisions can be undone for " + minutes + " minute" + (minutes === "1" ? "" : "s") + " after they are made.";
      toast.id = "review-undo-expired";
    }, left * 1000);
  }
  document.addEventListener("DOMContentLoaded", armToast);
  document.body.addEventListener("htmx:afterSwap", function () { previewing = null; armToast(); });

  // --- keys ----------------------------------------------------------------------------------
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var active = document.activeElement;
    if (typing(active)) {
      if (ev.key === "Escape") { active.blur(); ev.preventDefault(); }
      return;
    }
    if (previewing) {
      if (ev.key === "Enter") { ev.preventDefault(); confirmPreview(); return; }
      if (ev.key === "Escape") { ev.preventDefault(); closePreview(true); return; }
      if (ev.key === "n") { ev.preventDefault(); closePreview(false); byId("review-note").focus(); return; }
      var keys = labelButtons();
      for (var j = 0; j < keys.length; j++) {
        if (keys[j].dataset.hotkey && keys[j].dataset.hotkey === ev.key) { ev.preventDefault(); showPreview(keys[j]); return; }
      }
      if (ev.key !== "Tab") ev.preventDefault();
      return;
    }
    var buttons = labelButtons();
    for (var i = 0; i < buttons.length; i++) {
      if (buttons[i].dataset.hotkey && buttons[i].dataset.hotkey === ev.key) {
        ev.preventDefault();
        buttons[i].click();
        return;
      }
    }
    if (ev.key === "n") {
      var noteBox = byId("review-note");
      if (noteBox) { ev.preventDefault(); noteBox.focus(); }
    } else if (ev.key === "g") {
      if (byId("resolve-form")) { ev.preventDefault(); showPreview(defaultLabel()); }
    } else if (ev.key === "u") {
      var undo = byId("review-undo");
      if (undo) { ev.preventDefault(); undo.click(); }
    } else if (ev.key === "s") {
      var skip = byId("review-skip");
      if (skip) { ev.preventDefault(); skip.click(); }
    } else if (ev.key === "?") {
      var help = byId("review-keys");
      if (help) help.hidden = !help.hidden;
    } else if (ev.key === "Enter") {
      var start = document.querySelector("#review-start button, #review-empty button");
      if (start) { ev.preventDefault(); start.click(); }
    }
  });
  // Buttons are disabled while a decision is in flight so a double key press cannot decide twice.
  document.body.addEventListener("htmx:beforeRequest", function (ev) {
    var form = ev.target.closest && ev.target.closest("form");
    if (form) form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
  });
})();
