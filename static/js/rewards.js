/* A reward run's page: loss, accuracy and learning-rate curves by step (Chart.js, vendored). The rows come from
   the page's json_script "reward-metrics" ([{step, kind, values}]); while the run's job is active the page polls
   the API's metrics/ sub-resource for the steps after the last one it has, and stops once the run has ended. */
(function () {
  "use strict";

  var COLOURS = { train: "#2f6fed", eval: "#d08a13" };
  var POLL_MS = 5000;
  var charts = {};
  var rows = [];

  function series(key, kind) {
    return rows.filter(function (row) { return row.kind === kind && typeof row.values[key] === "number"; })
      .map(function (row) { return { x: row.step, y: row.values[key] }; });
  }

  function datasets(key) {
    var kinds = key === "lr" ? ["train"] : ["train", "eval"];
    return kinds.map(function (kind) {
      return { label: kind, data: series(key, kind), borderColor: COLOURS[kind], backgroundColor: COLOURS[kind],
               pointRadius: kind === "eval" ? 3 : 0, borderWidth: 2, showLine: true };
    });
  }

  function draw() {
    if (typeof window.Chart === "undefined") return;
    document.querySelectorAll("canvas[data-curve]").forEach(function (canvas) {
      var key = canvas.dataset.curve;
      if (charts[key]) {
        charts[key].data.datasets = datasets(key);
        charts[key].update("none");
        return;
      }
      charts[key] = new window.Chart(canvas, {
        type: "scatter",
        data: { datasets: datasets(key) },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { title: { display: true, text: "step" } }, y: { title: { display: true, text: key } } },
        },
      });
    });
    var empty = document.getElementById("no-metrics");
    if (empty && rows.length) empty.hidden = true;
  }

  function lastStep() {
    return rows.reduce(function (last, row) { return Math.max(last, row.step); }, 0);
  }

  function poll(config) {
    var after = lastStep();
    fetch(config.dataset.metricsUrl + "?after_step=" + after, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (fresh) {
        var seen = {};
        rows.forEach(function (row) { seen[row.kind + ":" + row.step] = true; });
        fresh.forEach(function (row) { if (!seen[row.kind + ":" + row.step]) rows.push(row); });
        if (fresh.length) draw();
        return fetch(config.dataset.runUrl, { credentials: "same-origin" });
      })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (run) {
        if (!run) return;
        var badge = document.getElementById("run-status");
        if (badge) badge.textContent = run.status;
        if (run.status === "queued" || run.status === "running") window.setTimeout(function () { poll(config); }, POLL_MS);
      })
      .catch(function () { window.setTimeout(function () { poll(config); }, POLL_MS * 2); });
  }

  function start() {
    var source = document.getElementById("reward-metrics");
    rows = source ? JSON.parse(source.textContent) : [];
    var settings = document.getElementById("reward-run-settings");
    var text = document.getElementById("config-text");
    if (settings && text) text.textContent = JSON.stringify(JSON.parse(settings.textContent), null, 2);
    draw();
    var config = document.getElementById("reward-run-config");
    if (config && config.dataset.active === "true") window.setTimeout(function () { poll(config); }, POLL_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
