/* A dataset version's page: the card's counts as bar charts (Chart.js, vendored). The numbers come from the
   page's json_script "version-plots": {key: {title, labels, values}}; each canvas names its key. */
(function () {
  "use strict";

  var ACCENT = "#2f6fed";
  var SPLIT_COLOURS = { train: "#2f6fed", validation: "#d08a13", test: "#1f9d55" };
  // Many or long labels read better as horizontal bars.
  var HORIZONTAL = { relation_kind: true, category: true, generator: true };

  function colours(key, labels) {
    if (key === "split") return labels.map(function (label) { return SPLIT_COLOURS[label] || ACCENT; });
    return ACCENT;
  }

  function bars(canvas, key, plot) {
    var horizontal = HORIZONTAL[key] === true;
    var countAxis = { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "pairs" } };
    var labelAxis = { ticks: { autoSkip: false } };
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: plot.labels,
        datasets: [{ label: "Pairs", data: plot.values, backgroundColor: colours(key, plot.labels),
                     maxBarThickness: 48 }],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { display: false } },
        scales: horizontal ? { x: countAxis, y: labelAxis } : { x: labelAxis, y: countAxis },
      },
    });
  }

  function drawPlots() {
    var source = document.getElementById("version-plots");
    if (!source || typeof window.Chart === "undefined") return;
    var plots = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-plot]").forEach(function (canvas) {
      var plot = plots[canvas.dataset.plot];
      if (plot && plot.values.length && !window.Chart.getChart(canvas)) bars(canvas, canvas.dataset.plot, plot);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawPlots);
  else drawPlots();
})();
