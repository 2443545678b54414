/* Reward evaluations side by side: grouped bars of pairwise accuracy per subset (Table 1's cells, then relation
   kinds), one colour per evaluation, each bar with its 95 % Wilson interval drawn as an error bar, and a dashed
   line at chance (0.5). Data: the page's json_script "comparison-series" ([{id, label, cells: {group:
   {accuracy, low, high, n}}}]) and "comparison-groups". */
(function () {
  "use strict";

  var PALETTE = ["#2f6fed", "#d08a13", "#2a9d5b", "#b23a48", "#7b4fbf", "#4a8fa3", "#8c6d31", "#555555"];

  function read(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // Error bars and the chance line, drawn after the bars.
  var intervals = {
    id: "intervals",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx, y = chart.scales.y;
      ctx.save();
      ctx.strokeStyle = "#222";
      ctx.lineWidth = 1.5;
      chart.data.datasets.forEach(function (dataset, i) {
        var meta = chart.getDatasetMeta(i);
        if (meta.hidden) return;
        meta.data.forEach(function (bar, j) {
          var ci = dataset.intervals[j];
          if (!ci) return;
          var top = y.getPixelForValue(ci[1]), bottom = y.getPixelForValue(ci[0]), half = Math.min(6, bar.width / 3);
          ctx.beginPath();
          ctx.moveTo(bar.x, top); ctx.lineTo(bar.x, bottom);
          ctx.moveTo(bar.x - half, top); ctx.lineTo(bar.x + half, top);
          ctx.moveTo(bar.x - half, bottom); ctx.lineTo(bar.x + half, bottom);
          ctx.stroke();
        });
      });
      var chance = y.getPixelForValue(0.5);
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = "#999";
      ctx.beginPath();
      ctx.moveTo(chart.chartArea.left, chance); ctx.lineTo(chart.chartArea.right, chance);
      ctx.stroke();
      ctx.restore();
    },
  };

  function draw() {
    var canvas = document.getElementById("comparison-chart");
    var series = read("comparison-series"), groups = read("comparison-groups");
    if (!canvas || !series || typeof window.Chart === "undefined") return;
    var datasets = series.map(function (item, i) {
      var colour = PALETTE[i % PALETTE.length];
      return {
        label: item.label, backgroundColor: colour, borderColor: colour,
        data: groups.map(function (group) { var cell = item.cells[group]; return cell ? cell.accuracy : null; }),
        intervals: groups.map(function (group) { var cell = item.cells[group]; return cell ? [cell.low, cell.high] : null; }),
        counts: groups.map(function (group) { var cell = item.cells[group]; return cell ? cell.n : 0; }),
      };
    });
    canvas.chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: groups, datasets: datasets },
      plugins: [intervals],
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { min: 0, max: 1, title: { display: true, text: "pairwise accuracy" } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (context) {
                var dataset = context.dataset, ci = dataset.intervals[context.dataIndex];
                return dataset.label + ": " + context.parsed.y.toFixed(3) +
                  (ci ? " [" + ci[0].toFixed(3) + ", " + ci[1].toFixed(3) + "]" : "") +
                  " n=" + dataset.counts[context.dataIndex];
              },
            },
          },
        },
      },
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
