// Every Chart.js chart on a page gets role="img" and, after its box, a <details> with a table of the
// same numbers (what a screen reader or a keyboard user reads instead of the picture). The table is
// rebuilt after each chart update, so charts that refresh keep their table in step.
(function () {
  "use strict";
  if (!window.Chart) return;

  function fmt(v) {
    if (v === null || v === undefined || (typeof v === "number" && isNaN(v))) return "—";
    if (typeof v === "object") v = v.y !== undefined ? v.y : v.x;
    if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(3);
    return String(v);
  }

  function cell(tag, text) {
    var c = document.createElement(tag);
    c.textContent = text;
    if (tag === "th") c.scope = "col";
    return c;
  }

  function rows(chart) {
    var data = chart.data || {};
    var sets = (data.datasets || []).filter(function (d) { return !d.hidden; });
    var labels = data.labels || [];
    var head = [""].concat(sets.map(function (d, i) {
      return d.label || "series " + (i + 1);
    }));
    var body = [];
    if (labels.length) {
      labels.forEach(function (label, i) {
        body.push([Array.isArray(label) ? label.join(" ") : fmt(label)].concat(sets.map(function (d) { return fmt(d.data[i]); })));
      });
      return {head: head, body: body};
    }
    // Points given as {x, y} (no shared labels): one row per point, named by its series and x.
    sets.forEach(function (d, i) {
      (d.data || []).forEach(function (p) {
        body.push([d.label || "series " + (i + 1), fmt(p && typeof p === "object" ? p.x : p), fmt(p)]);
      });
    });
    return {head: ["series", "x", "y"], body: body};
  }

  function build(chart) {
    var canvas = chart && chart.canvas;
    if (!canvas || !canvas.id) return;
    canvas.setAttribute("role", "img");
    if (!canvas.getAttribute("aria-label")) canvas.setAttribute("aria-label", "Chart");
    var id = canvas.id + "-table";
    var details = document.getElementById(id);
    if (!details) {
      details = document.createElement("details");
      details.className = "chart-data";
      details.id = id;
      var anchor = canvas.closest(".chart-box") || canvas;
      anchor.insertAdjacentElement("afterend", details);
      canvas.setAttribute("aria-describedby", id);
    }
    var r = rows(chart);
    var table = document.createElement("table");
    table.className = "table compact";
    var thead = table.createTHead().insertRow();
    r.head.forEach(function (h) { thead.appendChild(cell("th", h)); });
    var tbody = table.createTBody();
    r.body.forEach(function (line) {
      var tr = tbody.insertRow();
      line.forEach(function (v, i) { tr.appendChild(cell(i === 0 ? "th" : "td", v)); });
      tr.firstChild.scope = "row";
    });
    var open = details.open;
    details.textContent = "";
    details.appendChild(cell("summary", "Data table: " + canvas.getAttribute("aria-label")));
    details.appendChild(table);
    details.open = open;
  }

  var update = Chart.prototype.update;
  Chart.prototype.update = function () {
    var out = update.apply(this, arguments);
    try { build(this); } catch (e) { /* the chart still draws */ }
    return out;
  };
  function all() {
    Object.keys(Chart.instances || {}).forEach(function (k) { build(Chart.instances[k]); });
  }
  all();
  document.addEventListener("DOMContentLoaded", all);
  window.addEventListener("load", all);
  window.loupeChartTables = all;
})();
