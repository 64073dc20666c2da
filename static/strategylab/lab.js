/* The Lab pages' behaviour (no CDN, no build step); the strategy's parameters and the heatmap's
   axes are the Backtests pages' script (static/backtests/backtests.js: data-backtest-form,
   data-autosubmit).

   The New experiment form shows the window inputs of the choice made: one in-sample and one
   out-of-sample window, or walk-forward folds. The others are hidden and disabled, so they are
   not sent. Without JavaScript both show and the server reads only those of the choice. */
(function () {
  "use strict";

  function syncWindows(form) {
    var mode = form.querySelector("input[name=window_mode]:checked");
    var chosen = mode ? mode.value : "split";
    form.querySelectorAll("[data-window-mode]").forEach(function (part) {
      var on = part.getAttribute("data-window-mode") === chosen;
      part.hidden = !on;
      part.querySelectorAll("input, select").forEach(function (input) { input.disabled = !on; });
    });
  }

  function syncAll() {
    document.querySelectorAll("form[data-lab-form]").forEach(syncWindows);
  }

  document.addEventListener("change", function (evt) {
    var form = evt.target instanceof Element ? evt.target.closest("form[data-lab-form]") : null;
    if (form) syncWindows(form);
  });
  // A refused form comes back through a morph, which resets what this script set: set it again.
  document.addEventListener("htmx:afterSettle", syncAll);
  syncAll();
})();
