/* A GRPO run's page: curves by step (Chart.js, vendored): the training reward's mean with a ± std band and the
   evaluation reward's mean, the KL to the base model, the clip fraction and the NFEs per prompt. The rows come
   from the page's json_script "grpo-metrics" ([{step, kind, values}]); while the run's job is active the page
   polls the API's metrics/ sub-resource for the steps after the last one it has, and stops once the run has
   ended. The gallery's step selector shows the chosen step as soon as it changes. */
(function () {
  "use strict";

  var BLUE = "#2f6fed", ORANGE = "#d08a13", GREEN = "#2a9d55", BAND = "rgba(47, 111, 237, 0.15)";
  var POLL_MS = 5000;
  var charts = {};
  var rows = [];

  function series(kind, value) {
    return rows.filter(function (row) { return row.kind === kind && typeof value(row.values) === "number"; })
      .map(function (row) { return { x: row.step, y: value(row.values) }; });
  }

  function key(name) { return function (values) { return values[name]; }; }

  function line(label, data, colour, extra) {
    var dataset = { label: label, data: data, borderColor: colour, backgroundColor: colour, pointRadius: 0,
                    borderWidth: 2, showLine: true };
    Object.keys(extra || {}).forEach(function (name) { dataset[name] = extra[name]; });
    return dataset;
  }

  function datasets(curve) {
    if (curve === "reward") {
      var upper = series("train", function (v) {
        return typeof v.reward_mean === "number" && typeof v.reward_std === "number" ? v.reward_mean + v.reward_std : null;
      });
      var lower = series("train", function (v) {
        return typeof v.reward_mean === "number" && typeof v.reward_std === "number" ? v.reward_mean - v.reward_std : null;
      });
      return [
        line("train mean + std", upper, BAND, { borderWidth: 0, fill: false }),
        line("train mean - std", lower, BAND, { borderWidth: 0, fill: "-1", backgroundColor: BAND }),
        line("train mean", series("train", key("reward_mean")), BLUE),
        line("eval mean", series("eval", key("reward_mean")), ORANGE, { pointRadius: 3 }),
      ];
    }
    if (curve === "nfe") {
      return [
        line("sampling", series("train", key("nfe_sampling_per_prompt")), BLUE),
        line("training", series("train", key("nfe_train_per_prompt")), ORANGE),
        line("reference", series("train", key("nfe_reference_per_prompt")), GREEN),
      ];
    }
    return [line("train", series("train", key(curve)), BLUE)];
  }

  function draw() {
    if (typeof window.Chart === "undefined") return;
    document.querySelectorAll("canvas[data-curve]").forEach(function (canvas) {
      var curve = canvas.dataset.curve;
      if (charts[curve]) {
        charts[curve].data.datasets = datasets(curve);
        charts[curve].update("none");
        return;
      }
      charts[curve] = new window.Chart(canvas, {
        type: "scatter",
        data: { datasets: datasets(curve) },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          plugins: { filler: { propagate: false } },
          scales: { x: { title: { display: true, text: "step" } }, y: { title: { display: true, text: curve } } },
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

  function start() {
    var source = document.getElementById("grpo-metrics");
    rows = source ? JSON.parse(source.textContent) : [];
    var settings = document.getElementById("grpo-run-settings");
    var text = document.getElementById("config-text");
    if (settings && text) text.textContent = JSON.stringify(JSON.parse(settings.textContent), null, 2);
    var select = document.getElementById("gallery-step");
    if (select) select.addEventListener("change", function () { select.form.submit(); });
    draw();
    var config = document.getElementById("grpo-run-config");
    if (config && config.dataset.active === "true") window.setTimeout(function () { poll(config); }, POLL_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
