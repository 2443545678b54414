/* Researcher queue pages: the statistics plots (Chart.js with the chartjs-chart-matrix plugin, both vendored)
   and the adjudication keys (v: verified, r: rejected). */
(function () {
  "use strict";

  var ACCENT = "#2f6fed";
  var OK = "#1f9d55";
  var BAD = "#d64545";
  var WARN = "#d08a13";
  var GREY = "#9aa3b5";
  var EMPTY = "#eceff4";

  // --- Statistics plots -------------------------------------------------------------------------------------

  function kappaColour(cell) {
    if (cell.self) return "#ffffff";
    if (cell.v === null || cell.v === undefined) return EMPTY;
    var strength = Math.max(0.08, Math.min(1, Math.abs(cell.v)));
    return cell.v >= 0 ? "rgba(47, 111, 237, " + strength + ")" : "rgba(214, 69, 69, " + strength + ")";
  }

  function kappaText(cell) {
    if (cell.self) return cell.y + ": the same annotator";
    var pair = cell.y + " vs " + cell.x + ": ";
    if (!cell.n) return pair + "no shared items";
    var items = cell.n + " shared item" + (cell.n === 1 ? "" : "s");
    if (cell.v === null) return pair + "kappa undefined on " + items;
    return pair + "κ = " + cell.v.toFixed(2) + " on " + items;
  }

  // Writes each cell's kappa into it, so the heatmap reads without hovering.
  var cellValues = {
    id: "cellValues",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      var meta = chart.getDatasetMeta(0);
      var cells = chart.data.datasets[0].data;
      ctx.save();
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = "12px system-ui, sans-serif";
      meta.data.forEach(function (element, index) {
        var cell = cells[index];
        if (cell.self || cell.v === null || element.width < 28) return;
        var centre = element.getCenterPoint();
        ctx.fillStyle = Math.abs(cell.v) > 0.6 ? "#ffffff" : "#1d2330";
        ctx.fillText(cell.v.toFixed(2), centre.x, centre.y);
      });
      ctx.restore();
    },
  };

  function heatmap(canvas, stats) {
    var names = stats.kappa.annotators;
    var cells = [];
    names.forEach(function (row, i) {
      names.forEach(function (column, j) {
        cells.push({ x: column, y: row, v: stats.kappa.matrix[i][j], n: stats.kappa.shared[i][j], self: i === j });
      });
    });
    function side(size) {
      return function (context) {
        var area = context.chart.chartArea;
        return area ? Math.max(1, area[size] / names.length - 2) : 0;
      };
    }
    return new window.Chart(canvas, {
      type: "matrix",
      data: {
        datasets: [{
          label: "Cohen's kappa",
          data: cells,
          backgroundColor: function (context) { return kappaColour(context.dataset.data[context.dataIndex]); },
          borderColor: "#e2e5ea",
          borderWidth: 1,
          width: side("width"),
          height: side("height"),
        }],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { title: function () { return ""; },
                                  label: function (context) { return kappaText(context.raw); } } },
        },
        scales: {
          x: { type: "category", labels: names, offset: true, grid: { display: false }, ticks: { autoSkip: false } },
          y: { type: "category", labels: names, offset: true, reverse: false, grid: { display: false },
               ticks: { autoSkip: false } },
        },
      },
      plugins: [cellValues],
    });
  }

  function percentAxis() {
    return { min: 0, max: 100, title: { display: true, text: "%" } };
  }

  function asPercent(value) {
    return value === null || value === undefined ? null : Math.round(value * 1000) / 10;
  }

  function annotatorRates(canvas, stats) {
    var people = stats.annotators;
    function series(label, key, colour) {
      return { label: label, backgroundColor: colour,
               data: people.map(function (person) { return asPercent(person[key]); }) };
    }
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: people.map(function (person) { return person.username; }),
        datasets: [
          series("Gold accuracy", "gold_accuracy", OK),
          series("Agreement with consensus", "consensus_agreement", ACCENT),
          series("Left picks (position bias)", "position_bias", WARN),
          series("Skip rate", "skip_rate", GREY),
        ],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: { y: percentAxis() },
      },
    });
  }

  function annotatorSeconds(canvas, stats) {
    var people = stats.annotators;
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: people.map(function (person) { return person.username; }),
        datasets: [{ label: "Median seconds", backgroundColor: ACCENT,
                     data: people.map(function (person) { return person.median_seconds; }) }],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, title: { display: true, text: "seconds" } } },
      },
    });
  }

  // Answers per hour as bars, the running total as a line on its own axis: progress over time.
  function throughput(canvas, stats) {
    var hours = stats.hourly;
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: hours.map(function (row) { return row.hour; }),
        datasets: [
          { type: "line", label: "Total answers", data: hours.map(function (row) { return row.total; }),
            borderColor: OK, backgroundColor: OK, yAxisID: "total", pointRadius: hours.length > 48 ? 0 : 3,
            tension: 0.2 },
          { label: "Answers per hour", data: hours.map(function (row) { return row.answers; }),
            backgroundColor: ACCENT, yAxisID: "y", maxBarThickness: 40 },
        ],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: {
          x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } },
          y: { beginAtZero: true, title: { display: true, text: "per hour" }, ticks: { precision: 0 } },
          total: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                   title: { display: true, text: "total" }, ticks: { precision: 0 } },
        },
      },
    });
  }

  var ANSWER_COLOURS = { winner: OK, loser: BAD, both: ACCENT, neither: WARN, unsure: GREY };

  function answers(canvas, stats) {
    var keys = Object.keys(stats.answer_labels);
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: keys.map(function (key) { return stats.answer_labels[key]; }),
        datasets: [{ label: "Answers", data: keys.map(function (key) { return stats.answers[key] || 0; }),
                     backgroundColor: keys.map(function (key) { return ANSWER_COLOURS[key] || ACCENT; }) }],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { ticks: { autoSkip: false } } },
      },
    });
  }

  var PLOTS = { kappa: heatmap, "annotator-rates": annotatorRates, "annotator-seconds": annotatorSeconds,
                throughput: throughput, answers: answers };

  function drawPlots() {
    var source = document.getElementById("stats-data");
    if (!source || typeof window.Chart === "undefined") return;
    var stats = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-plot]").forEach(function (canvas) {
      var draw = PLOTS[canvas.dataset.plot];
      if (draw && !window.Chart.getChart(canvas)) draw(canvas, stats);
    });
  }

  // --- Adjudication keys ---------------------------------------------------------------------------------------
  // The form swaps in with `settle:0ms`: htmx then wires the new form up in the same task that inserts it. With
  // htmx's default 20 ms settle delay a key pressed in between clicked a form htmx had not processed yet, and the
  // browser submitted it natively (a full page load instead of the next item).

  function typing(element) {
    return element && (element.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(element.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || typing(document.activeElement)) return;
    var form = document.getElementById("adjudication-form");
    if (!form) return;
    var button = form.querySelector('button[data-key="' + event.key.toLowerCase() + '"]');
    if (!button || button.disabled) return;
    event.preventDefault();
    button.click();  // a click, so that htmx sends the button's name and value with the form
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawPlots);
  else drawPlots();
})();
