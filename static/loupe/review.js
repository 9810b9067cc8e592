// Review page keys: a label's hotkey decides it, n focuses the note, g toggles "append to guideline",
// s skips, ? shows the keys, Enter starts. Keys typed into the note stay in the note (Esc leaves it).
(function () {
  "use strict";
  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT" || el.tagName === "SELECT" || el.isContentEditable);
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var active = document.activeElement;
    if (typing(active)) {
      if (ev.key === "Escape") { active.blur(); ev.preventDefault(); }
      return;
    }
    var form = document.getElementById("resolve-form");
    if (form) {
      var buttons = form.querySelectorAll("button[data-hotkey]");
      for (var i = 0; i < buttons.length; i++) {
        if (buttons[i].dataset.hotkey && buttons[i].dataset.hotkey === ev.key) {
          ev.preventDefault();
          buttons[i].click();
          return;
        }
      }
    }
    if (ev.key === "n") {
      var note = document.getElementById("review-note");
      if (note) { ev.preventDefault(); note.focus(); }
    } else if (ev.key === "g") {
      var box = document.getElementById("review-append");
      if (box) { ev.preventDefault(); box.checked = !box.checked; }
    } else if (ev.key === "s") {
      var skip = document.getElementById("review-skip");
      if (skip) { ev.preventDefault(); skip.click(); }
    } else if (ev.key === "?") {
      var keys = document.getElementById("review-keys");
      if (keys) keys.hidden = !keys.hidden;
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
