// The project set-up form: add and remove label and member rows (the form works without this
// script with the rows the page starts with), and confirm a label merge before it is sent.
(function () {
  "use strict";

  function renumber(list, prefix, counter) {
    const rows = list.querySelectorAll(":scope > li");
    rows.forEach(function (row, i) {
      row.querySelectorAll("[name]").forEach(function (el) {
        el.name = el.name.replace(new RegExp("^" + prefix + "-\\d+-"), prefix + "-" + i + "-");
      });
    });
    counter.value = rows.length;
    return rows;
  }

  function rowsFor(listId, counterId, addId, prefix, removable) {
    const list = document.getElementById(listId);
    const counter = document.getElementById(counterId);
    const add = document.getElementById(addId);
    if (!list || !counter || !add) return;
    function refresh() {
      const rows = renumber(list, prefix, counter);
      rows.forEach(function (row) {
        const remove = row.querySelector(".pf-remove");
        if (remove) remove.hidden = !removable || rows.length <= 2;
      });
    }
    add.hidden = false;
    add.addEventListener("click", function () {
      const template = list.querySelector(":scope > li:last-child");
      const row = template.cloneNode(true);
      row.classList.remove("has-error");
      row.querySelectorAll(".error").forEach(function (e) { e.remove(); });
      row.querySelectorAll("input, textarea").forEach(function (el) { el.value = ""; });
      list.appendChild(row);
      refresh();
      const first = row.querySelector("input");
      if (first) first.focus();
    });
    list.addEventListener("click", function (ev) {
      const btn = ev.target.closest(".pf-remove");
      if (!btn) return;
      btn.closest("li").remove();
      refresh();
    });
    refresh();
  }

  rowsFor("label-list", "label-rows", "label-add-row", "label", true);
  rowsFor("member-list", "member-rows", "member-add-row", "member", false);

  document.addEventListener("submit", function (ev) {
    const btn = ev.submitter;
    if (btn && btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) ev.preventDefault();
  });

  const error = document.querySelector(".project-form .has-error input, .project-form .has-error textarea");
  if (error) error.focus();
})();
