/* Live curves of a training run's page (reward runs, GRPO runs), drawn with Chart.js (vendored): one scatter chart
   per canvas[data-curve], its datasets given by the page's own script. The rows ({step, kind, values}) come from a
   json_script; while the run's job is active the page polls the API's metrics/ sub-resource for the steps after
   the last one it has, and the run's detail for its status, and stops once the run has ended.

   RunCurves.start({metrics: json_script id, settings: json_script id of the run's config (shown pretty-printed in
   #config-text), config: id of the element whose data-metrics-url, data-run-url and data-active drive the polling,
   datasets: function (curve, series) -> Chart.js datasets, options: extra Chart.js options}).
   series(kind, value) gives the {x: step, y} points of the rows of that kind, `value` being a values key or a
   function of the values. */
(function () {
  "use strict";

  var POLL_MS = 5000;

  function start(spec) {
    var charts = {};
    var rows = [];

    function series(kind, value) {
      var read = typeof value === "function" ? value : function (values) { return values[value]; };
      return rows.filter(function (row) { return row.kind === kind && typeof read(row.values) === "number"; })
        .map(function (row) { return { x: row.step, y: read(row.values) }; });
    }

    function draw() {
      if (typeof window.Chart === "undefined") return;
      document.querySelectorAll("canvas[data-curve]").forEach(function (canvas) {
        var curve = canvas.dataset.curve;
        if (charts[curve]) {
          charts[curve].data.datasets = spec.datasets(curve, series);
          charts[curve].update("none");
          return;
        }
        var options = {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { title: { display: true, text: "step" } }, y: { title: { display: true, text: curve } } },
        };
        Object.keys(spec.options || {}).forEach(function (name) { options[name] = spec.options[name]; });
        charts[curve] = new window.Chart(canvas, { type: "scatter", data: { datasets: spec.datasets(curve, series) },
                                                   options: options });
      });
      var empty = document.getElementById("no-metrics");
      if (empty && rows.length) empty.hidden = true;
    }

    function lastStep() {
      return rows.reduce(function (last, row) { return Math.max(last, row.step); }, 0);
    }

    function poll(config) {
      fetch(config.dataset.metricsUrl + "?after_step=" + lastStep(), { credentials: "same-origin" })
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

    function begin() {
      var source = document.getElementById(spec.metrics);
      rows = source ? JSON.parse(source.textContent) : [];
      var settings = document.getElementById(spec.settings);
      var text = document.getElementById("config-text");
      if (settings && text) text.textContent = JSON.stringify(JSON.parse(settings.textContent), null, 2);
      draw();
      var config = document.getElementById(spec.config);
      if (config && config.dataset.active === "true") window.setTimeout(function () { poll(config); }, POLL_MS);
    }

    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", begin);
    else begin();
  }

  window.RunCurves = { start: start };
})();
