// The bug page's Merge card (templates/bugqueue/_merge_card.html): "Merge into #..." posts
// POST /api/bugs/merge {into, bugs: [this bug]}; "Unmerge" posts POST /api/bugs/{id}/unmerge.
// Either reloads the page on success; an error is shown in the card and nothing changed.
(() => {
  const card = document.getElementById("merge-card");
  if (!card) return;
  const bugId = parseInt(card.dataset.bugId, 10);
  const errorBox = document.getElementById("merge-error");
  const csrf = () => (document.querySelector("meta[name=csrf-token]") || {}).content || "";

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || `HTTP ${res.status}`);
    return data;
  }

  const form = document.getElementById("merge-form");
  if (form) {
    const input = document.getElementById("merge-into");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const id = input.value.trim().replace(/^#/, "");
      if (!/^\d+$/.test(id)) { showError("Give the id of the bug to merge this one into."); input.focus(); return; }
      const button = document.getElementById("merge-submit");
      button.disabled = true;
      showError("");
      try {
        await post("/api/bugs/merge", { into: parseInt(id, 10), bugs: [bugId] });
        window.location.reload();
      } catch (err) {
        showError(err.message);
        button.disabled = false;
      }
    });
  }

  const unmerge = document.getElementById("unmerge");
  if (unmerge) {
    unmerge.addEventListener("click", async () => {
      unmerge.disabled = true;
      showError("");
      try {
        await post(`/api/bugs/${bugId}/unmerge`);
        window.location.reload();
      } catch (err) {
        showError(err.message);
        unmerge.disabled = false;
      }
    });
  }
})();
