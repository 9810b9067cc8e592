// Quality page: the consensus-quality histogram, stacked by what the run did with each item.
(function () {
  "use strict";
  var dataEl = document.getElementById("quality-histogram-data");
  var canvas = document.getElementById("quality-histogram");
  if (!dataEl || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(dataEl.textContent);
  var threshold = parseFloat(document.getElementById("quality-threshold").textContent);
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
        x: {stacked: true, title: {display: true, text: "consensus quality (accept at ≥ " + threshold + ")"}},
        y: {stacked: true, title: {display: true, text: "items"}, beginAtZero: true}
      },
      plugins: {legend: {position: "bottom"}}
    }
  });
})();
