/* Prompt-set pages: plots (Chart.js, vendored), the Perturb buttons and the "/" shortcut. */
(function () {
  "use strict";

  var ACCENT = "#2f6fed";

  function drawPlots() {
    var source = document.getElementById("plot-data");
    if (!source || typeof window.Chart === "undefined") return;
    var plots = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-plot]").forEach(function (canvas) {
      var data = plots[canvas.dataset.plot];
      if (!data || window.Chart.getChart(canvas)) return;
      var histogram = canvas.dataset.plot !== "relation_kinds";
      new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: data.labels,
          datasets: [{ label: canvas.dataset.ylabel, data: data.counts, backgroundColor: ACCENT,
                       categoryPercentage: histogram ? 1.0 : 0.8, barPercentage: histogram ? 0.95 : 0.9 }],
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          indexAxis: histogram ? "x" : "y",
          plugins: { legend: { display: false } },
          scales: histogram ? {
            x: { title: { display: true, text: canvas.dataset.xlabel } },
            y: { beginAtZero: true, title: { display: true, text: canvas.dataset.ylabel }, ticks: { precision: 0 } },
          } : {
            x: { beginAtZero: true, title: { display: true, text: canvas.dataset.ylabel }, ticks: { precision: 0 } },
            y: { ticks: { autoSkip: false } },  // every relation type gets its label
          },
        },
      });
    });
  }

  // "Perturb" next to a prompt: put it in the preview form and run the preview.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-preview-prompt]");
    if (!button) return;
    var form = document.getElementById("preview-form");
    if (!form) return;
    form.elements.text.value = button.dataset.previewText;
    form.elements.prompt.value = button.dataset.previewPrompt;
    form.scrollIntoView({ block: "nearest" });
    form.elements.text.focus();
    if (window.htmx) window.htmx.trigger(form, "submit");
    else form.requestSubmit();
  });

  // Editing the text detaches it from the picked prompt.
  document.addEventListener("input", function (event) {
    var form = event.target.form;
    if (form && form.id === "preview-form" && event.target.name === "text") form.elements.prompt.value = "";
  });

  // "/" jumps to the search box, as in many sites; not while typing somewhere.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) return;
    var search = document.querySelector("[data-search-input]");
    if (search) {
      event.preventDefault();
      search.focus();
    }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawPlots);
  else drawPlots();
})();
