/* Feedback-delay dashboard: draws the charts from the report embedded by the server (#delay-data). */
(function () {
  "use strict";
  var el = document.getElementById("delay-data");
  if (!el || typeof Chart === "undefined") return;
  var data = JSON.parse(el.textContent);
  var css = getComputedStyle(document.documentElement);
  var accent = css.getPropertyValue("--accent").trim() || "#3559e0";
  var muted = css.getPropertyValue("--muted").trim() || "#667085";
  var bad = css.getPropertyValue("--bad").trim() || "#d92d20";
  var ok = css.getPropertyValue("--ok").trim() || "#1f9d55";
  Chart.defaults.font.family = css.getPropertyValue("font-family");
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false;
  var pct = function (v) { return Math.round(v * 100) + "%"; };
  var days = function (v) { return v + " d"; };
  var charts = data.charts;
  var slo = data.slo;

  // Kaplan-Meier: share of predictions with ground truth by delay, beside the naive labeled-only curve.
  var targetDays = slo.target_seconds / 86400;
  var maxX = charts.km.length ? charts.km[charts.km.length - 1].x : targetDays;
  new Chart(document.getElementById("chart-km"), {
    type: "line",
    data: {
      datasets: [
        { label: "Kaplan–Meier", data: charts.km, borderColor: accent, backgroundColor: accent, stepped: true, pointRadius: 0, borderWidth: 2 },
        { label: "Naive (labeled only)", data: charts.naive, borderColor: muted, borderDash: [5, 4], stepped: true, pointRadius: 0, borderWidth: 1.5 },
        { label: "SLO: " + pct(slo.quantile) + " within " + (Math.round(targetDays * 10) / 10) + " d",
          data: [{ x: 0, y: slo.quantile }, { x: targetDays, y: slo.quantile }, { x: targetDays, y: 0 }],
          borderColor: slo.breached ? bad : ok, borderDash: [2, 3], pointRadius: 0, borderWidth: 1.5 }
      ]
    },
    options: {
      parsing: true,
      scales: {
        x: { type: "linear", min: 0, max: Math.max(maxX, targetDays * 1.1), title: { display: true, text: "days since prediction" } },
        y: { min: 0, max: 1, ticks: { callback: pct }, title: { display: true, text: "share with ground truth" } }
      },
      plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + pct(c.parsed.y) + " by " + c.parsed.x.toFixed(2) + " d"; } } } }
    }
  });

  var hist = charts.histogram;
  new Chart(document.getElementById("chart-hist"), {
    type: "bar",
    data: {
      labels: hist.counts.map(function (_, i) { return i; }),
      datasets: [{ label: "labeled predictions", data: hist.counts, backgroundColor: muted }]
    },
    options: { plugins: { legend: { display: false } },
      scales: { x: { title: { display: true, text: hist.unit + " since prediction" } }, y: { beginAtZero: true } } }
  });

  new Chart(document.getElementById("chart-coverage"), {
    type: "bar",
    data: {
      labels: data.coverage.map(function (c) { return c.age_days; }),
      datasets: [{ label: "share with ground truth", data: data.coverage.map(function (c) { return c.fraction_labeled; }), backgroundColor: accent }]
    },
    options: { plugins: { legend: { display: false } },
      scales: { x: { title: { display: true, text: "age (days)" } }, y: { min: 0, max: 1, ticks: { callback: pct } } } }
  });

  new Chart(document.getElementById("chart-backlog"), {
    type: "line",
    data: {
      labels: charts.backlog.map(function (b) { return b.day; }),
      datasets: [{ label: "waiting for ground truth", data: charts.backlog.map(function (b) { return b.unlabeled; }),
        borderColor: bad, backgroundColor: "rgba(217,45,32,.12)", fill: true, pointRadius: 0, tension: 0.1 }]
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
  });

  var live = data.live;
  var weeks = live.map(function (w) { return w.week; });
  var lo = live.map(function (w) { return w.interval ? w.interval[0] : null; });
  var hi = live.map(function (w) { return w.interval ? w.interval[1] : null; });
  new Chart(document.getElementById("chart-live"), {
    data: {
      labels: weeks,
      datasets: [
        { type: "line", label: "interval low", data: lo, borderColor: "transparent", pointRadius: 0, fill: false, yAxisID: "y" },
        { type: "line", label: "95% band", data: hi, borderColor: "transparent", backgroundColor: "rgba(53,89,224,.18)", pointRadius: 0, fill: "-1", yAxisID: "y" },
        { type: "line", label: "estimated accuracy (whole week)", data: live.map(function (w) { return w.estimated_accuracy; }), borderColor: accent, pointRadius: 2, yAxisID: "y" },
        { type: "line", label: "accuracy on labeled", data: live.map(function (w) { return w.accuracy_on_labeled; }), borderColor: ok, backgroundColor: ok, showLine: false, pointStyle: "rectRot", pointRadius: 5, yAxisID: "y" },
        { type: "bar", label: "share labeled", data: live.map(function (w) { return w.fraction_labeled; }), backgroundColor: "rgba(102,112,133,.25)", yAxisID: "y2" }
      ]
    },
    options: {
      plugins: { legend: { labels: { filter: function (item) { return item.text !== "interval low"; } } } },
      scales: {
        y: { min: 0, max: 1, position: "left", ticks: { callback: pct }, title: { display: true, text: "accuracy" } },
        y2: { min: 0, max: 1, position: "right", grid: { drawOnChartArea: false }, ticks: { callback: pct }, title: { display: true, text: "share labeled" } }
      }
    }
  });

  // Live performance by stage: accuracy on labeled predictions beside mean confidence, one group per stage.
  var STAGE_COLOR = { production: ok, canary: "#c77700", shadow: "#6941c6", candidate: accent, retired: muted };
  var stageName = function (s) { return s === null ? "not registered" : s; };
  var stages = (data.stages || []).filter(function (s) { return s.predictions > 0; });
  var stagesCanvas = document.getElementById("chart-stages");
  if (stagesCanvas && stages.length) {
    new Chart(stagesCanvas, {
      type: "bar",
      data: {
        labels: stages.map(function (s) { return stageName(s.stage); }),
        datasets: [
          { label: "live accuracy (labeled)", data: stages.map(function (s) { return s.accuracy_on_labeled; }),
            backgroundColor: stages.map(function (s) { return STAGE_COLOR[s.stage] || muted; }) },
          { label: "mean confidence", data: stages.map(function (s) { return s.mean_confidence; }),
            backgroundColor: "rgba(102,112,133,.3)" }
        ]
      },
      options: {
        scales: { y: { min: 0, max: 1, ticks: { callback: pct } } },
        plugins: { tooltip: { callbacks: { afterLabel: function (c) {
          var s = stages[c.dataIndex];
          if (c.datasetIndex !== 0) return "";
          return s.labeled + " of " + s.predictions + " labeled" +
            (s.accuracy_interval ? "; 95%: " + pct(s.accuracy_interval[0]) + "–" + pct(s.accuracy_interval[1]) : "");
        } } } }
      }
    });
  }

  // Live accuracy per slice value: all stages together, then one bar per stage.
  var slice = data.slice;
  var sliceCanvas = document.getElementById("chart-slices");
  if (sliceCanvas && slice && slice.values.length) {
    var present = [];
    ["production", "canary", "shadow", "candidate", "retired", null].forEach(function (st) {
      if (slice.values.some(function (v) { return v.by_stage.some(function (b) { return b.stage === st && b.labeled > 0; }); })) present.push(st);
    });
    var sets = [{ label: "all", data: slice.values.map(function (v) { return v.accuracy_on_labeled; }), backgroundColor: accent }];
    if (present.length > 1) {
      present.forEach(function (st) {
        sets.push({
          label: stageName(st),
          data: slice.values.map(function (v) {
            var b = v.by_stage.filter(function (x) { return x.stage === st; })[0];
            return b ? b.accuracy_on_labeled : null;
          }),
          backgroundColor: STAGE_COLOR[st] || muted
        });
      });
    }
    new Chart(sliceCanvas, {
      type: "bar",
      data: { labels: slice.values.map(function (v) { return v.value.length > 24 ? v.value.slice(0, 23) + "…" : v.value; }), datasets: sets },
      options: {
        indexAxis: "y",
        scales: { x: { min: 0, max: 1, ticks: { callback: pct }, title: { display: true, text: "live accuracy (predictions with ground truth)" } } },
        plugins: { tooltip: { callbacks: { afterLabel: function (c) {
          var v = slice.values[c.dataIndex];
          if (c.datasetIndex > 0) {
            var st = present[c.datasetIndex - 1];
            v = v.by_stage.filter(function (x) { return x.stage === st; })[0] || { labeled: 0, predictions: 0 };
          }
          return v.labeled + " of " + v.predictions + " labeled";
        } } } }
      }
    });
  }
})();
