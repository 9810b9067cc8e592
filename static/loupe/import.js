// File import page: keyboard shortcuts (u choose a file, then upload it; s start; d download rejected rows) and the progress
// bar, which polls GET /api/imports/{id} while the import runs and reloads the page for the summary.
(function () {
  "use strict";

  var file = document.getElementById("import-file");

  function typing(t) {
    return t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable);
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    var target = { u: "import-file", s: "import-start", d: "import-rejected-csv" }[e.key];
    if (e.key === "u" && file && file.files.length) target = "import-upload-btn"; // chosen: upload it
    var el = target && document.getElementById(target);
    if (!el) return;
    e.preventDefault();
    el.click();
  });

  if (file) {
    file.addEventListener("change", function () {
      if (file.files.length) document.getElementById("import-upload-btn").focus();
    });
  }

  var box = document.getElementById("import-progress");
  if (!box || !box.dataset.poll) return;
  var url = box.dataset.poll;
  var fmt = new Intl.NumberFormat();
  var failures = 0;

  function show(job) {
    var bar = document.getElementById("import-bar");
    bar.setAttribute("aria-valuenow", job.percent);
    bar.firstElementChild.style.width = job.percent + "%";
    document.getElementById("import-percent").textContent = job.percent + "%";
    ["rows_read", "created", "updated", "unchanged", "rejected"].forEach(function (k) {
      document.getElementById("n-" + k).textContent = fmt.format(job[k]);
    });
    box.dataset.status = job.status;
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (job) {
        failures = 0;
        show(job);
        if (job.status === "done" || job.status === "failed") {
          window.location.reload();
        } else {
          setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        failures += 1;
        setTimeout(poll, Math.min(10000, 1000 * Math.pow(2, failures)));
      });
  }
  setTimeout(poll, 500);
})();
