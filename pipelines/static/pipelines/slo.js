// The SLO page's budget chart: each known objective's error budget left, hour by hour, over the
// rolling window (the series come in the chart's data-series attribute; a CSP forbids inline scripts).
(function () {
  "use strict";
  const COLOURS = {freshness: "#7a5af8", delivery: "#d92d20", api_availability: "#12b76a", api_latency: "#f79009"};
  const TITLES = {api_availability: "API availability", api_latency: "API latency"};

  function draw() {
    const el = document.getElementById("chart-budget");
    if (!el || typeof Plotly === "undefined") return;
    const series = JSON.parse(el.dataset.series || "{}");
    const names = Object.keys(series);
    const traces = names.map((name) => ({
      x: series[name].map((p) => new Date(p[0])),
      y: series[name].map((p) => p[1]),
      name: TITLES[name] || name,
      type: "scatter",
      mode: "lines",
      line: {color: COLOURS[name] || "#2e90fa", width: 2},
      hovertemplate: "%{y:.1f} % left<extra>" + (TITLES[name] || name) + "</extra>",
    }));
    const layout = {
      margin: {l: 50, r: 10, t: 30, b: 40},
      height: 260,
      yaxis: {title: {text: "% of the budget left"}, ticksuffix: " %", zeroline: true, zerolinecolor: "#d92d20"},
      xaxis: {type: "date", title: {text: "time in your browser's zone"}},
      legend: {orientation: "h", x: 0, y: 1.12},
      paper_bgcolor: "rgba(0,0,0,0)",
      // With nothing known there is no time axis to show (plotly would invent one in the year 2000).
      ...(names.length ? {} : {xaxis: {visible: false}, yaxis: {visible: false}}),
      plot_bgcolor: "rgba(0,0,0,0)",
      annotations: names.length ? [] : [{text: "no objective is known yet (under a day measured)", showarrow: false,
                                         xref: "paper", yref: "paper", x: 0.5, y: 0.5}],
    };
    Plotly.newPlot(el, traces, layout, {displaylogo: false, responsive: true}).then(() => {
      el.dataset.points = String(traces.reduce((n, t) => n + t.x.length, 0));
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
