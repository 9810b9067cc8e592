// Quality page: the consensus-quality histogram, stacked by what the run did with each item, and
// the accept rule's calibration curve (share of consensus labels reviewers confirmed, per score bin).
(function () {
  "use strict";
  var el = document.getElementById("calibration-curve-data");
  var canvas = document.getElementById("calibration-curve");
  if (!el || !canvas || typeof Chart === "undefined") return;
  var points = JSON.parse(el.textContent);
  var labels = points.map(function (p) { return p.low.toFixed(1) + "–" + p.high.toFixed(1); });
  new Chart(canvas, {
    data: {
      labels: labels,
      datasets: [
        {type: "bar", label: "share right (reviewed)", data: points.map(function (p) { return p.share_right; }),
         backgroundColor: "#93c5fd", yAxisID: "y"},
        {type: "line", label: "fitted P(right)", data: points.map(function (p) { return p.fitted; }),
         borderColor: "#1f9d55", backgroundColor: "#1f9d55", yAxisID: "y", spanGaps: true}
      ]
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      scales: {
        x: {title: {display: true, text: canvas.dataset.on === "p_right" ? "estimated chance the consensus is right" : "consensus quality score"}},
        y: {min: 0, max: 1, title: {display: true, text: "share right"}}
      },
      plugins: {
        legend: {position: "bottom"},
        tooltip: {callbacks: {afterLabel: function (ctx) {
          var p = points[ctx.dataIndex];
          return p.right + " right of " + p.count + " decisions";
        }}}
      }
    }
  });
})();
(function () {
  "use strict";
  var dataEl = document.getElementById("quality-histogram-data");
  var canvas = document.getElementById("quality-histogram");
  if (!dataEl || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(dataEl.textContent);
  var threshold = JSON.parse(document.getElementById("quality-threshold").textContent);
  var colors = {accepted: "#1f9d55", kept: "#98a2b3", pending: "#c7d2fe", reopened: "#c77700", review: "#d92d20", stale: "#667085"};
  var names = {accepted: "accepted", kept: "already decided", pending: "still being labeled", reopened: "one more annotation", review: "to review", stale: "changed meanwhile"};
  var order = ["accepted", "kept", "pending", "reopened", "review", "stale"];
  var datasets = order.filter(function (k) { return data.series[k]; }).map(function (k) {
    return {label: names[k], data: data.series[k], backgroundColor: colors[k], stack: "q"};
  });
  var labels = data.bins.map(function (b) { return b.toFixed(2); });
  new Chart(canvas, {
    type: "bar",
    data: {labels: labels, datasets: datasets},
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      scales: {
        x: {stacked: true, title: {display: true, text: threshold === null ? "consensus quality" : "consensus quality (accept at ≥ " + (+threshold.toFixed(3)) + ")"}},
        y: {stacked: true, title: {display: true, text: "items"}, beginAtZero: true}
      },
      plugins: {legend: {position: "bottom"}}
    }
  });
})();
