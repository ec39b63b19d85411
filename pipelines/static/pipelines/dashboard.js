// Draws a pipeline's charts with plotly.js from the downsampled series endpoint.
(function () {
  const box = document.getElementById("ob-ranges");
  if (!box) return;
  const css = getComputedStyle(document.documentElement);
  const fg = (css.getPropertyValue("--body-fg") || "#333").trim();
  const grid = (css.getPropertyValue("--hairline-color") || "#e8e8e8").trim();
  const C = {blue: "#2e6bd9", teal: "#0e9384", grey: "#98a2b3", red: "#d92d20", orange: "#f79009",
             purple: "#7a5af8", green: "#12b76a", pink: "#dd2590"};

  function line(t, y, name, color, extra) {
    return Object.assign({x: t, y: y, name: name, type: "scatter", mode: "lines", connectgaps: false,
                          line: {color: color, width: 1.8}}, extra || {});
  }
  function level(t, value, name, color) {  // a constant reference line across the range
    return line([t[0], t[t.length - 1]], [value, value], name, color,
                {line: {color: color, width: 1.2, dash: "dash"}, hoverinfo: "name+y"});
  }
  function layout(extra) {
    return Object.assign({
      margin: {l: 48, r: 16, t: 8, b: 28}, height: 230, hovermode: "x unified",
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: {color: fg, size: 11},
      legend: {orientation: "h", y: -0.18}, xaxis: {gridcolor: grid, type: "date"},
      yaxis: {gridcolor: grid, rangemode: "tozero"},
    }, extra || {});
  }
  function draw(id, traces, extra) {
    const el = document.getElementById(id);
    const points = traces.filter(tr => !tr.reference)
      .reduce((n, tr) => n + tr.y.filter(v => v !== null && v !== undefined).length, 0);
    el.dataset.points = points;
    const lay = layout(extra);
    if (!points) lay.annotations = [{text: "no data in this range", showarrow: false, xref: "paper", yref: "paper",
                                     x: 0.5, y: 0.5, font: {color: C.grey}}];
    Plotly.react(el, traces, lay, {displaylogo: false, responsive: true,
                                   modeBarButtonsToRemove: ["lasso2d", "select2d"]});
  }
  function ref(trace) { trace.reference = true; return trace; }

  function render(d) {
    const t = d.t, s = d.series, L = d.lines;
    const backlog = [line(t, s.visible, "visible", C.blue, {fill: "tozeroy", fillcolor: "rgba(46,107,217,.08)"}),
                     line(t, s.in_flight, "in flight", C.teal), line(t, s.delayed, "delayed", C.grey),
                     line(t, s.dlq_visible, "DLQ", C.red)];
    if (L.backlog_threshold) backlog.push(ref(level(t, L.backlog_threshold, "threshold", C.orange)));
    draw("chart-backlog", backlog);
    const age = [line(t, s.oldest_age, "oldest (s)", C.purple), line(t, s.dlq_oldest_age, "DLQ oldest (s)", C.pink)];
    if (L.oldest_age_sla) age.push(ref(level(t, L.oldest_age_sla, "SLA", C.orange)));
    if (L.retention_period) age.push(ref(level(t, L.retention_period, "retention", C.red)));
    draw("chart-age", age);
    draw("chart-throughput", [line(t, s.sent, "sent", C.blue), line(t, s.received, "received", C.grey),
                              line(t, s.deleted, "deleted", C.green)]);
    const lam = [line(t, s.lambda_invocations, "invocations/min", C.blue), line(t, s.lambda_errors, "errors/min", C.red),
                 line(t, s.lambda_throttles, "throttles/min", C.orange),
                 line(t, s.lambda_concurrency, "concurrency", C.purple, {yaxis: "y2"})];
    if (L.maximum_concurrency) lam.push(ref(level(t, L.maximum_concurrency, "max concurrency", C.purple)));
    lam[lam.length - 1].yaxis = "y2";
    draw("chart-lambda", lam, {yaxis2: {overlaying: "y", side: "right", rangemode: "tozero", showgrid: false}});
    draw("chart-duration", [line(t, s.lambda_duration_avg, "avg", C.blue), line(t, s.lambda_duration_p99, "p99", C.purple)]);
    draw("chart-api", [line(t, s.api_count, "requests/min", C.blue), line(t, s.api_4xx, "4xx/min", C.orange),
                       line(t, s.api_5xx, "5xx/min", C.red),
                       line(t, s.api_latency_avg, "latency avg (ms)", C.teal, {yaxis: "y2"}),
                       line(t, s.api_latency_p99, "latency p99 (ms)", C.purple, {yaxis: "y2"})],
         {yaxis2: {overlaying: "y", side: "right", rangemode: "tozero", showgrid: false}});
    document.getElementById("ob-source").textContent =
      `${t.length} points · ${Math.round(d.bucket_seconds / 60)} min each · from ${d.source}`;
  }

  async function load(range) {
    const err = document.getElementById("ob-range-error");
    const q = new URLSearchParams({range: range});
    if (range === "custom") {
      q.set("start", document.getElementById("ob-start").value);
      q.set("end", document.getElementById("ob-end").value);
    }
    err.textContent = "";
    const resp = await fetch(`${box.dataset.seriesUrl}?${q}`, {credentials: "same-origin"});
    const data = await resp.json();
    if (!resp.ok) { err.textContent = data.error || "Could not load the series."; return; }
    box.querySelectorAll("button").forEach(b => b.classList.toggle("ob-on", b.dataset.range === range));
    render(data);
    const url = new URL(window.location); url.searchParams.set("range", range);
    window.history.replaceState(null, "", url);
    document.body.dataset.loadedRange = range;
  }
  box.addEventListener("click", (e) => { if (e.target.dataset.range) load(e.target.dataset.range); });
  const start = () => load(box.dataset.range === "custom" ? "24h" : box.dataset.range);
  if (window.Plotly) start(); else window.addEventListener("load", start);
  setInterval(() => { const r = document.body.dataset.loadedRange; if (r && r !== "custom") load(r); }, 60000);
})();
