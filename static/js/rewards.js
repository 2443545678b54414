/* A reward run's page: loss, accuracy and learning-rate curves by step, train and eval (js/run_curves.js draws
   and polls them). */
(function () {
  "use strict";

  var COLOURS = { train: "#2f6fed", eval: "#d08a13" };

  window.RunCurves.start({
    metrics: "reward-metrics", settings: "reward-run-settings", config: "reward-run-config",
    datasets: function (key, series) {
      var kinds = key === "lr" ? ["train"] : ["train", "eval"];
      return kinds.map(function (kind) {
        return { label: kind, data: series(kind, key), borderColor: COLOURS[kind], backgroundColor: COLOURS[kind],
                 pointRadius: kind === "eval" ? 3 : 0, borderWidth: 2, showLine: true };
      });
    },
  });
})();
