/* Charts drawn from JSON data islands (json_script): <canvas data-chart="daily|volume|reputation"
   data-source="<id of the JSON>" data-labels="<id of the series names>">. When a polled partial
   replaces a data island, the chart is updated in place. */
(function () {
  "use strict";
  var COLORS = {
    sent: "#4f5bd5",
    delivered: "#1f9d55",
    undelivered: "#d64545",
    deferred: "#e0a100",
    bounced: "#d64545",
    reputation: "#4f5bd5"
  };

  function readJSON(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function dayLabels(dates) {
    var lang = document.documentElement.lang || undefined;
    var format = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric", timeZone: "UTC" });
    return dates.map(function (iso) { return format.format(new Date(iso + "T00:00:00Z")); });
  }

  function dataset(key, data, names, extra) {
    var base = {
      label: names[key] || key,
      data: data[key] || [],
      borderColor: COLORS[key],
      backgroundColor: COLORS[key],
      borderWidth: 2,
      pointRadius: 2
    };
    return Object.assign(base, extra || {});
  }

  var BUILDERS = {
    daily: function (data, names) {
      return {
        type: "line",
        data: {
          labels: dayLabels(data.labels),
          datasets: [
            dataset("sent", data, names, { tension: 0.25 }),
            dataset("delivered", data, names, { tension: 0.25 }),
            dataset("undelivered", data, names, { tension: 0.25 })
          ]
        },
        options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
      };
    },
    /* Delivered, deferred and bounced are stacked (they do not overlap); sent is a line over
       them, since delivered is a part of sent and stacking the two would count mail twice. */
    volume: function (data, names) {
      var bars = ["delivered", "deferred", "bounced"].map(function (key) {
        return dataset(key, data, names, { borderWidth: 0, stack: "outcomes", order: 2 });
      });
      var sent = dataset("sent", data, names, { type: "line", stack: "sent", order: 1, tension: 0.2, pointRadius: 2 });
      return {
        type: "bar",
        data: { labels: dayLabels(data.labels), datasets: [sent].concat(bars) },
        options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }
      };
    },
    reputation: function (data, names) {
      return {
        type: "line",
        data: {
          labels: dayLabels(data.labels),
          datasets: [dataset("reputation", data, names, { spanGaps: true, tension: 0.2, fill: false, pointRadius: 3 })]
        },
        options: { scales: { y: { min: 0, max: 100 } }, plugins: { legend: { display: false } } }
      };
    }
  };

  function draw(canvas) {
    var kind = canvas.getAttribute("data-chart");
    var sourceId = canvas.getAttribute("data-source");
    var source = document.getElementById(sourceId);
    if (!BUILDERS[kind] || !source || !window.Chart) { return; }
    var raw = source.textContent;
    if (canvas.mailopsSource === raw) { return; }
    canvas.mailopsSource = raw;
    var config = BUILDERS[kind](JSON.parse(raw), readJSON(canvas.getAttribute("data-labels")) || {});
    var existing = window.Chart.getChart(canvas);
    if (existing) {
      existing.data = config.data;
      existing.update("none");
      return;
    }
    config.options = Object.assign(
      {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } }
      },
      config.options,
      { plugins: Object.assign({ legend: { position: "bottom", labels: { boxWidth: 12 } } }, (config.options || {}).plugins) }
    );
    new window.Chart(canvas, config);
  }

  function drawAll() {
    if (window.Chart && !window.Chart.mailopsStyled) {
      window.Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
      window.Chart.defaults.color = "#5b6472";
      window.Chart.mailopsStyled = true;
    }
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
})();
