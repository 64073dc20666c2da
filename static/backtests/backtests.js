/* The Backtests pages' behaviour (no CDN, no build step).

   1. The New backtest and New matrix forms show the inputs of the choice made: a bot, or a
      strategy with its own parameters. The others are hidden and disabled, so they are not sent.
      Without JavaScript every input shows and the server reads only those of the choice. In the
      New matrix form the grid inputs are those of the chosen bot's strategy, their placeholders
      the bot's own values (the base of the grid), and "Add a window" adds a row of window
      inputs (without JavaScript the form always has one empty row to spare).
   1b. A matrix's heatmap axes are applied as soon as they are chosen (a GET: the URL keeps them,
      so a reload keeps them); choosing across the parameter that is down swaps the two.
   2. A backtest's page draws its charts with TradingView lightweight-charts 5.3.0 (vendored:
      static/vendor/lightweight-charts, the global `LightweightCharts`): the equity with its
      drawdown in a pane below (from the page's json_script), and the price as candles with each
      trade's entry and exit marked (fetched from the backtest's prices.json). A chart that cannot
      be drawn says why in its place. A drawn chart carries data-state="drawn". */
(function () {
  "use strict";

  // --- the New backtest form -------------------------------------------------------------------
  function showOnly(form, attribute, chosen) {
    form.querySelectorAll("[" + attribute + "]").forEach(function (fieldset) {
      var on = fieldset.getAttribute(attribute) === chosen;
      fieldset.hidden = !on;
      fieldset.disabled = !on;
    });
  }

  function chosenBot(form) {
    var bot = form.querySelector("select[name=bot_id]");
    return bot && bot.selectedIndex >= 0 ? bot.options[bot.selectedIndex] : null;
  }

  function syncForm(form) {
    var source = form.querySelector("input[name=source]:checked");
    var chosen = source ? source.value : "strategy";
    showOnly(form, "data-source", chosen);
    var strategy = form.querySelector("select[name=strategy_key]");
    var key = strategy ? strategy.value : "";
    var bot = chosen === "bot" ? chosenBot(form) : null;
    var values = {};
    if (chosen === "bot") {
      // A bot's strategy decides which parameters there are; its values are the grid's base.
      key = bot ? bot.getAttribute("data-strategy") || "" : "";
      try { values = JSON.parse((bot && bot.getAttribute("data-parameters")) || "{}"); } catch (e) { values = {}; }
    }
    showOnly(form, "data-strategy", key);
    form.querySelectorAll("input[data-parameter]").forEach(function (input) {
      var name = input.getAttribute("data-parameter");
      input.placeholder = name in values ? String(values[name]) : input.getAttribute("data-default") || "";
    });
    var add = form.querySelector("[data-add-window]");
    if (add) add.hidden = false;
  }

  function addWindow(form) {
    var rows = form.querySelectorAll("[data-window-row]");
    var last = rows[rows.length - 1];
    if (!last) return;
    var index = rows.length;
    var row = last.cloneNode(true);
    row.querySelectorAll(".field-error").forEach(function (p) { p.remove(); });
    row.querySelectorAll("input").forEach(function (input) {
      var part = /\.(start|end)$/.exec(input.name)[1];
      input.name = "windows." + index + "." + part;
      input.id = "id-mx-window-" + index + "-" + part;
      input.value = "";
      input.defaultValue = "";
    });
    row.querySelectorAll("label").forEach(function (label) {
      var part = /-(start|end)$/.exec(label.htmlFor)[1];
      label.htmlFor = "id-mx-window-" + index + "-" + part;
      label.textContent = "Window " + (index + 1) + " " + part;
    });
    last.after(row);
    row.querySelector("input").focus();
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target instanceof Element ? evt.target.closest("[data-add-window]") : null;
    if (button && button.form) addWindow(button.form);
  });

  // --- a matrix's heatmap axes ------------------------------------------------------------------
  function rememberAxes() {
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.dataset.previous = select.value;
    });
  }

  document.addEventListener("change", function (evt) {
    var target = evt.target;
    var form = target instanceof Element ? target.closest("form[data-autosubmit]") : null;
    if (!form) return;
    var x = form.querySelector("select[name=x]");
    var y = form.querySelector("select[name=y]");
    if (x && y && x.value === y.value && (target === x || target === y)) {
      // One parameter cannot be across and down at once: the other axis takes the one replaced.
      var other = target === x ? y : x;
      var previous = target.dataset.previous || "";
      if (other === x && (previous === "none" || !previous)) {
        previous = Array.prototype.map.call(x.options, function (o) { return o.value; })
          .filter(function (v) { return v !== target.value; })[0] || "";
      }
      other.value = previous;
    }
    form.requestSubmit();
  });

  function syncForms() {
    document.querySelectorAll("form[data-backtest-form]").forEach(syncForm);
  }

  document.addEventListener("change", function (evt) {
    var form = evt.target instanceof Element ? evt.target.closest("form[data-backtest-form]") : null;
    if (form) syncForm(form);
  });
  // A refused form comes back through a morph, which resets what this script set: set it again.
  document.addEventListener("htmx:afterSettle", syncForms);

  // --- charts -----------------------------------------------------------------------------------
  var COLORS = { text: "#344054", grid: "#f2f4f7", up: "#039855", down: "#d92d20", line: "#155eef" };

  function say(el, state, text) {
    el.dataset.state = state;
    el.classList.add("chart-message");
    el.textContent = text;
  }

  function newChart(el) {
    return LightweightCharts.createChart(el, {
      autoSize: true,
      layout: { textColor: COLORS.text, background: { color: "#ffffff" }, attributionLogo: false },
      grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
      timeScale: { timeVisible: true, secondsVisible: false },
      localization: { locale: "en-US" },
    });
  }

  function decimals(step) {
    var text = String(step);
    return text.indexOf(".") < 0 ? 0 : text.length - text.indexOf(".") - 1;
  }

  function drawEquity(el) {
    var source = document.getElementById(el.dataset.series);
    var data = source ? JSON.parse(source.textContent) : null;
    if (!data || !data.equity || !data.equity.length) {
      say(el, "empty", "No equity to draw: no equity curve was stored for this backtest.");
      return;
    }
    var chart = newChart(el);
    var money = { type: "price", precision: 2, minMove: 0.01 };
    var equity = chart.addSeries(LightweightCharts.LineSeries, {
      color: COLORS.line, lineWidth: 2, title: "Equity", priceFormat: money,
    });
    equity.setData(data.equity);
    var drawdown = chart.addSeries(LightweightCharts.BaselineSeries, {
      baseValue: { type: "price", price: 0 },
      topLineColor: COLORS.down, bottomLineColor: COLORS.down,
      topFillColor1: "rgba(217, 45, 32, 0.05)", topFillColor2: "rgba(217, 45, 32, 0.05)",
      bottomFillColor1: "rgba(217, 45, 32, 0.1)", bottomFillColor2: "rgba(217, 45, 32, 0.4)",
      lineWidth: 1, title: "Drawdown", priceFormat: money,
    }, 1);
    drawdown.setData(data.drawdown);
    var panes = chart.panes();
    if (panes.length > 1) panes[1].setHeight(110);
    chart.timeScale().fitContent();
    el.dataset.state = "drawn";
  }

  function drawPrices(el) {
    var note = document.getElementById("price-chart-note");
    fetch(el.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (answer) {
        var body = answer.body;
        if (!answer.ok) {
          say(el, "error", "The price chart cannot be drawn: " + body.message + " " + (body.suggested_fix || "") +
            " (trace " + body.trace_id + ")");
          return;
        }
        if (!body.candles.length) {
          say(el, "empty", "No bars are stored for this window any more, so there is no price to draw.");
          return;
        }
        var chart = newChart(el);
        var step = Number(body.tick_size);
        var candles = chart.addSeries(LightweightCharts.CandlestickSeries, {
          upColor: COLORS.up, downColor: COLORS.down, borderVisible: false,
          wickUpColor: COLORS.up, wickDownColor: COLORS.down,
          priceFormat: { type: "price", precision: decimals(body.tick_size), minMove: step },
        });
        candles.setData(body.candles);
        LightweightCharts.createSeriesMarkers(candles, body.markers);
        chart.timeScale().fitContent();
        el.dataset.state = "drawn";
        el.dataset.candles = String(body.candles.length);
        el.dataset.markers = String(body.markers.length);
        if (note) {
          var parts = [];
          if (body.bars_per_candle > 1) {
            parts.push(body.bars.toLocaleString("en-US") + " bars, drawn as " + body.candles.length.toLocaleString("en-US") +
              " candles of " + body.bars_per_candle + " bars each (highs and lows kept).");
          }
          if (body.more_trades) {
            parts.push("Entries and exits are marked for the first " + body.marked_trades.toLocaleString("en-US") +
              " trades; the trade table below has every one.");
          }
          if (parts.length) note.textContent = note.textContent + " " + parts.join(" ");
        }
      })
      .catch(function () {
        say(el, "error", "The price chart could not be loaded (the server did not answer with its data). Reload the page to try again.");
      });
  }

  function drawCharts() {
    if (!window.LightweightCharts) {
      document.querySelectorAll(".chart").forEach(function (el) {
        say(el, "error", "The charting library did not load, so the charts cannot be drawn. Reload the page.");
      });
      return;
    }
    var equity = document.getElementById("equity-chart");
    if (equity && !equity.dataset.state) drawEquity(equity);
    var prices = document.getElementById("price-chart");
    if (prices && !prices.dataset.state) {
      prices.dataset.state = "loading";
      drawPrices(prices);
    }
  }

  syncForms();
  rememberAxes();
  drawCharts();
})();
