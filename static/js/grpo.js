/* A GRPO run's page: curves by step (js/run_curves.js draws and polls them): the training reward's mean with a
   ± std band and the evaluation reward's mean, the KL to the base model, the clip fraction and the NFEs per
   prompt. The gallery's step selector shows the chosen step as soon as it changes. */
(function () {
  "use strict";

  var BLUE = "#2f6fed", ORANGE = "#d08a13", GREEN = "#2a9d55", BAND = "rgba(47, 111, 237, 0.15)";

  function line(label, data, colour, extra) {
    var dataset = { label: label, data: data, borderColor: colour, backgroundColor: colour, pointRadius: 0,
                    borderWidth: 2, showLine: true };
    Object.keys(extra || {}).forEach(function (name) { dataset[name] = extra[name]; });
    return dataset;
  }

  function band(sign) {
    return function (v) {
      return typeof v.reward_mean === "number" && typeof v.reward_std === "number" ? v.reward_mean + sign * v.reward_std
        : null;
    };
  }

  window.RunCurves.start({
    metrics: "grpo-metrics", settings: "grpo-run-settings", config: "grpo-run-config",
    options: { plugins: { filler: { propagate: false } } },
    datasets: function (curve, series) {
      if (curve === "reward") {
        return [
          line("train mean + std", series("train", band(1)), BAND, { borderWidth: 0, fill: false }),
          line("train mean - std", series("train", band(-1)), BAND, { borderWidth: 0, fill: "-1", backgroundColor: BAND }),
          line("train mean", series("train", "reward_mean"), BLUE),
          line("eval mean", series("eval", "reward_mean"), ORANGE, { pointRadius: 3 }),
        ];
      }
      if (curve === "nfe") {
        return [
          line("sampling", series("train", "nfe_sampling_per_prompt"), BLUE),
          line("training", series("train", "nfe_train_per_prompt"), ORANGE),
          line("reference", series("train", "nfe_reference_per_prompt"), GREEN),
        ];
      }
      return [line("train", series("train", curve), BLUE)];
    },
  });

  function gallery() {
    var select = document.getElementById("gallery-step");
    if (select) select.addEventListener("change", function () { select.form.submit(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", gallery);
  else gallery();
})();
