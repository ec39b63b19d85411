// Draws a pipeline's daily AWS cost for the last 30 UTC days, stacked by service: from the JSON data
// block the page carries (one request fewer than spend.json, which it falls back to).
// A day without readings is a gap (no bar), never a zero; a day with a part unknown is marked "≥".
(function () {
  const el = document.getElementById("chart-spend");
  if (!el) return;
  const colours = {lambda: "#f79009", sqs: "#2e6bd9", api: "#7a5af8", polling: "#98a2b3"};
  const css = getComputedStyle(document.documentElement);
  const fg = (css.getPropertyValue("--body-fg") || "#333").trim();
  const grid = (css.getPropertyValue("--hairline-color") || "#e8e8e8").trim();

  function draw(d) {
    const traces = Object.keys(d.series).map((k) => ({
      x: d.days, y: d.series[k], name: d.labels[k], type: "bar", marker: {color: colours[k] || "#12b76a"},
      hovertemplate: "%{x}: $%{y:.4f}<extra>" + d.labels[k] + "</extra>",
    }));
    const points = traces.reduce((n, t) => n + t.y.filter((v) => v !== null).length, 0);
    el.dataset.points = points;
    const partial = d.days.filter((_, i) => d.complete[i] === false);
    const annotations = partial.map((day) => ({x: day, y: 1, yref: "paper", text: "≥", showarrow: false,
                                                font: {color: "#d92d20"}}));
    if (!points) annotations.push({text: "no readings in the last 30 days", showarrow: false, xref: "paper",
                                   yref: "paper", x: 0.5, y: 0.5, font: {color: "#98a2b3"}});
    Plotly.react(el, traces, {
      barmode: "stack", height: 270, margin: {l: 8, r: 8, t: 8, b: 8}, hovermode: "x unified",
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: {color: fg, size: 11},
      legend: {orientation: "h", x: 0, xanchor: "left", y: 1, yanchor: "bottom"},
      xaxis: {type: "date", title: {text: "UTC day"}, gridcolor: grid, automargin: true},
      yaxis: {title: {text: "USD per day"}, gridcolor: grid, rangemode: "tozero", automargin: true, tickprefix: "$"},
      annotations: annotations,
    }, {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"]});
    el.dataset.drawn = "1";
  }

  function load() {
    const inline = document.getElementById("ob-spend-data");  // a JSON data block: not a script, CSP allows it
    if (inline) { draw(JSON.parse(inline.textContent)); return; }
    fetch(el.dataset.url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then(draw)
      .catch((e) => { el.textContent = `The cost chart could not be loaded: ${e.message}`; });
  }
  if (window.Plotly) load(); else window.addEventListener("load", load);
})();
