// The bug page's comments on its failing items: the chosen item's comment form (loupe/comments.js,
// with @mentions) below the list, a "Comment" button on each failure row that chooses its item, and
// the list redrawn from the page after a comment is posted.
(function () {
  "use strict";

  const select = document.getElementById("failure-comment-item");
  const holder = document.getElementById("failure-comment-box");
  if (!select || !holder || !window.LoupeComments) return;

  function show(itemId) {
    const box = document.createElement("div");
    box.className = "item-comments";
    box.dataset.item = itemId;
    holder.replaceChildren(box);
    window.LoupeComments.mount(box);
    return box;
  }

  select.addEventListener("change", function () { show(select.value); });
  show(select.value);

  document.querySelectorAll("[data-comment-item]").forEach(function (button) {
    button.addEventListener("click", function () {
      select.value = button.dataset.commentItem;
      const box = show(select.value);
      const area = box.querySelector("textarea");
      box.scrollIntoView({ block: "nearest" });
      if (area) area.focus();
    });
  });

  // A new comment: redraw the list (the server applies who may read what).
  document.addEventListener("loupe:comment-posted", async function () {
    try {
      const html = await (await fetch(window.location.pathname, { credentials: "same-origin" })).text();
      const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("failure-comments");
      const section = document.getElementById("failure-comments");
      if (!fresh || !section) return;
      ["failure-comments-count"].forEach(function (id) {
        const a = section.querySelector("#" + id), b = fresh.querySelector("#" + id);
        if (a && b) a.replaceWith(b);
      });
      const oldList = section.querySelector(".cm-list, #failure-comments-empty");
      const newList = fresh.querySelector(".cm-list, #failure-comments-empty");
      if (oldList && newList) oldList.replaceWith(newList);
    } catch (err) { /* the form already shows the comment; the list catches up on the next visit */ }
  });
})();
