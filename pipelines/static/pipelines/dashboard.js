// Draws a pipeline's charts with plotly.js from the downsampled series endpoint.
//
// Times are entered and shown in one time zone, named on the page and on every time axis: the
// browser's own, or the one the address names with ?tz=. Custom ranges go to the server as ISO 8601
// with their offset. The address always holds the range on screen (a custom one with its start and
// end), so a reload, the back button or a shared link shows the same range.
(function () {
  const box = document.getElementById("ob-ranges");
  if (!box) return;
  const $ = (id) => document.getElementById(id);
  const css = getComputedStyle(document.documentElement);
  const fg = (css.getPropertyValue("--body-fg") || "#333").trim();
  const quiet = (css.getPropertyValue("--body-quiet-color") || "#666").trim();
  const grid = (css.getPropertyValue("--hairline-color") || "#e8e8e8").trim();
  const C = {blue: "#2e6bd9", teal: "#0e9384", grey: "#98a2b3", red: "#d92d20", orange: "#f79009",
             purple: "#7a5af8", green: "#12b76a", pink: "#dd2590"};
  const err = $("ob-range-error");
  const pad = (n) => String(n).padStart(2, "0");
  let zoneWarning = "";

  // --- time zones ---------------------------------------------------------------------------------
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  let zone = browserZone, fmt = null;
  function setZone(name) {
    fmt = new Intl.DateTimeFormat("en-US", {timeZone: name, hourCycle: "h23", year: "numeric", month: "2-digit",
                                            day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"});
    zone = name;
  }
  function parts(ms) {
    const p = {};
    for (const x of fmt.formatToParts(new Date(ms))) p[x.type] = x.value;
    return p;
  }
  function offsetMinutes(ms) {  // the zone's offset from UTC at that moment, in minutes
    const p = parts(ms);
    const asUtc = Date.UTC(+p.year, p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
    return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
  }
  function wall(ms) {  // plotly draws a date string as written: give it the zone's wall-clock time
    const p = parts(ms);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }
  function inputValue(ms) {
    const p = parts(ms);
    return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
  }
  function withOffset(ms) {  // ISO 8601 in the zone with its offset: unambiguous, and readable in the address
    const p = parts(ms), off = offsetMinutes(ms), a = Math.abs(off);
    const secs = p.second === "00" ? "" : `:${p.second}`;
    const sign = off ? `${off < 0 ? "-" : "+"}${pad(Math.floor(a / 60))}:${pad(a % 60)}` : "Z";
    return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}${secs}${sign}`;
  }
  function fromWall(text) {  // "2026-11-20T08:00" read as a wall-clock time in the zone
    const m = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d))?$/.exec(text);
    if (!m) return NaN;
    const asUtc = Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    const guess = asUtc - offsetMinutes(asUtc) * 60000;
    return asUtc - offsetMinutes(guess) * 60000;  // the offset at the moment itself, around a change
  }
  function moment(text) {  // a time from the address: Unix seconds or ms, ISO with an offset, or wall time here
    text = text.trim().replace(/(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$/, "$1+$2");  // '+' read as a space
    if (/^\d+$/.test(text)) return text.length > 11 ? +text : +text * 1000;
    if (/(Z|[+-]\d\d:?\d\d)$/i.test(text)) return Date.parse(text.replace(/([+-]\d\d)(\d\d)$/, "$1:$2"));
    return fromWall(text);
  }
  function offsetLabel(min) {
    const a = Math.abs(min);
    return `UTC${min < 0 ? "−" : "+"}${Math.floor(a / 60)}${a % 60 ? ":" + pad(a % 60) : ""}`;
  }
  function zoneLabel(startMs, endMs) {  // "America/New_York (UTC−5)"; both offsets when the range spans a change
    if (zone === "UTC" || zone === "Etc/UTC") return "UTC";
    const a = offsetLabel(offsetMinutes(startMs)), b = offsetLabel(offsetMinutes(endMs));
    return `${zone} (${a === b ? b : a + " → " + b})`;
  }

  // --- durations ----------------------------------------------------------------------------------
  function human(s) {  // a measured age: "45 s", "20 min", "3.5 h", "4.0 d"
    if (s < 120) return `${Math.round(s)} s`;
    if (s < 90 * 60) return `${Math.round(s / 60)} min`;
    if (s < 48 * 3600) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }
  const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                 172800, 604800];
  function durationAxis(top, title) {  // at most five round steps, labelled in the step's unit
    const step = STEPS.find((s) => top / s <= 5) || Math.ceil(top / 5 / 604800) * 604800;
    const [size, unit] = step < 60 ? [1, "s"] : step < 3600 ? [60, "min"] : step < 86400 ? [3600, "h"] : [86400, "d"];
    const vals = [];
    for (let v = 0; v <= top; v += step) vals.push(v);
    return axis(title, {range: [0, top], rangemode: "normal", tickmode: "array", tickvals: vals,
                        ticktext: vals.map((v) => (v ? `${+(v / size).toFixed(1)} ${unit}` : "0"))});
  }

  // --- charts -------------------------------------------------------------------------------------
  function axis(title, extra) {
    return Object.assign({gridcolor: grid, rangemode: "tozero", automargin: true, tickformat: ",~f",
                          hoverformat: ",~f", zeroline: false,
                          title: {text: title, font: {size: 11, color: quiet}, standoff: 6}}, extra || {});
  }
  function rightAxis(title, top, extra) {  // whole-number steps for small counts such as a concurrency
    const small = top > 0 && top <= 10;
    return axis(title, Object.assign({overlaying: "y", side: "right", showgrid: false, tickmode: small ? "linear" : "auto",
                                      dtick: small ? (top > 6 ? 2 : 1) : undefined, tick0: 0, nticks: 6,
                                      range: top > 0 ? [0, top * 1.1] : undefined}, extra || {}));
  }
  function line(x, y, name, color, extra) {
    return Object.assign({x: x, y: y, name: name, type: "scatter", mode: "lines", connectgaps: false,
                          line: {color: color, width: 1.8}}, extra || {});
  }
  function asDuration(trace) {  // hover shows an age as a duration, not a count of seconds
    trace.customdata = trace.y.map((v) => (v === null || v === undefined ? "" : human(v)));
    trace.hovertemplate = "%{customdata}";
    return trace;
  }
  function level(x, value, name, color, yaxis) {  // a constant reference line across the range
    return {x: x, y: [value, value], name: name, type: "scatter", mode: "lines", reference: true, yaxis: yaxis || "y",
            line: {color: color, width: 1.2, dash: "dash"}, hoverinfo: "skip"};
  }
  const peak = (...lists) => Math.max(0, ...lists.flat().filter((v) => v !== null && v !== undefined));

  function draw(id, traces, lay) {
    const el = $(id);
    if (!el) return;  // a chart the pipeline has no part for
    const points = traces.filter((tr) => !tr.reference)
      .reduce((n, tr) => n + tr.y.filter((v) => v !== null && v !== undefined).length, 0);
    el.dataset.points = points;
    const full = Object.assign({
      margin: {l: 8, r: 8, t: 8, b: 8}, height: 270, hovermode: "x unified",
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: {color: fg, size: 11},
      legend: {orientation: "h", x: 0, xanchor: "left", y: 1, yanchor: "bottom"},
    }, lay);
    full.annotations = (lay.annotations || []).slice();
    if (!points) full.annotations.push({text: "no data in this range", showarrow: false, xref: "paper", yref: "paper",
                                        x: 0.5, y: 0.5, font: {color: C.grey}});
    Plotly.react(el, traces, full, {displaylogo: false, responsive: true,
                                    modeBarButtonsToRemove: ["lasso2d", "select2d"]});
  }

  function render(d) {
    const s = d.series, L = d.lines;
    const startMs = Date.parse(d.start), endMs = Date.parse(d.end);
    const x = d.t.map((t) => wall(Date.parse(t)));
    const span = [wall(startMs), wall(endMs)];
    const label = zoneLabel(startMs, endMs);
    const xaxis = axis(`time in ${label}`, {type: "date", range: span, rangemode: "normal", tickformat: undefined,
                                             hoverformat: "%b %-d, %H:%M"});
    const chart = (y, extra) => Object.assign({xaxis: xaxis, yaxis: y}, extra || {});

    const backlog = [line(x, s.visible, "visible", C.blue, {fill: "tozeroy", fillcolor: "rgba(46,107,217,.08)"}),
                     line(x, s.in_flight, "in flight", C.teal), line(x, s.delayed, "delayed", C.grey),
                     line(x, s.dlq_visible, "DLQ", C.red)];
    if (L.backlog_threshold) backlog.push(level(span, L.backlog_threshold, "threshold", C.orange));
    draw("chart-backlog", backlog, chart(axis("messages")));

    // The age scales to the ages and the SLA: a 4-day retention line would flatten both to zero.
    const age = [asDuration(line(x, s.oldest_age, "oldest message", C.purple)),
                 asDuration(line(x, s.dlq_oldest_age, "DLQ oldest", C.pink))];
    let top = Math.max(60, peak(s.oldest_age, s.dlq_oldest_age), L.oldest_age_sla || 0) * 1.15;
    const notes = [];
    if (L.oldest_age_sla) age.push(level(span, L.oldest_age_sla, `SLA ${human(L.oldest_age_sla)}`, C.orange));
    if (L.retention_period && L.retention_period <= top) {
      age.push(level(span, L.retention_period, `retention ${human(L.retention_period)}`, C.red));
      top = Math.max(top, L.retention_period * 1.08);
    } else if (L.retention_period) {
      notes.push({text: `retention ${human(L.retention_period)} — off scale ↑`, showarrow: false, xref: "paper",
                  yref: "paper", x: 1, y: 1, xanchor: "right", yanchor: "top", font: {color: C.red, size: 11}});
    }
    draw("chart-age", age, chart(durationAxis(top, "age"), {annotations: notes}));

    draw("chart-throughput", [line(x, s.sent, "sent", C.blue), line(x, s.received, "received", C.grey),
                              line(x, s.deleted, "deleted", C.green)], chart(axis("messages/min")));

    const most = L.maximum_concurrency || 0;
    const lam = [line(x, s.lambda_invocations, "invocations", C.blue), line(x, s.lambda_errors, "errors", C.red),
                 line(x, s.lambda_throttles, "throttles", C.orange),
                 line(x, s.lambda_concurrency, "concurrency", C.purple, {yaxis: "y2"})];
    if (most) lam.push(level(span, most, `max concurrency ${most}`, C.purple, "y2"));
    draw("chart-lambda", lam, chart(axis("per minute"),
                                    {yaxis2: rightAxis("concurrent", Math.max(most, peak(s.lambda_concurrency)))}));
    draw("chart-duration", [line(x, s.lambda_duration_avg, "avg", C.blue), line(x, s.lambda_duration_p99, "p99", C.purple)],
         chart(axis("duration (ms)")));
    draw("chart-api", [line(x, s.api_count, "requests", C.blue), line(x, s.api_4xx, "4xx", C.orange),
                       line(x, s.api_5xx, "5xx", C.red),
                       line(x, s.api_latency_avg, "latency avg", C.teal, {yaxis: "y2"}),
                       line(x, s.api_latency_p99, "latency p99", C.purple, {yaxis: "y2"})],
         chart(axis("per minute"), {yaxis2: rightAxis("latency (ms)", peak(s.api_latency_avg, s.api_latency_p99))}));

    $("ob-zone").textContent = `times in ${label}`;
    const each = d.bucket_seconds >= 3600 ? `${d.bucket_seconds / 3600} h` : `${d.bucket_seconds / 60} min`;
    $("ob-source").textContent = `${d.t.length} points · ${each} each · from ${d.source}`;
  }

  // --- the range, the address and the inputs ------------------------------------------------------
  let shown = null, data = null;  // the range on screen and its series

  function normalise(text) {  // an address's time as ISO with this zone's offset; unreadable text goes as written
    if (!text) return "";
    const ms = moment(text);
    return isNaN(ms) ? text : withOffset(ms);
  }
  function fromAddress() {
    const q = new URLSearchParams(window.location.search);
    const range = q.get("range") || box.dataset.range;
    if (range !== "custom") return {range: range};
    return {range: range, start: normalise(q.get("start")), end: normalise(q.get("end"))};
  }
  const readable = (q) => q.toString().replace(/%3A/gi, ":").replace(/%2F/gi, "/");  // times and zones as typed
  function writeAddress(sel, how) {
    const url = new URL(window.location);
    url.searchParams.set("range", sel.range);
    for (const k of ["start", "end"]) {
      if (sel.range === "custom" && sel[k]) url.searchParams.set(k, sel[k]); else url.searchParams.delete(k);
    }
    if (zone !== browserZone) url.searchParams.set("tz", zone); else url.searchParams.delete("tz");
    url.search = readable(url.searchParams);
    if (url.href !== window.location.href) window.history[how === "push" ? "pushState" : "replaceState"](null, "", url);
  }
  function fillInputs(sel, d) {
    const at = (text) => (text && !isNaN(moment(text)) ? inputValue(moment(text)) : "");
    $("ob-start").value = sel.range === "custom" ? at(sel.start) : inputValue(Date.parse(d.start));
    $("ob-end").value = sel.range === "custom" ? at(sel.end) : inputValue(Date.parse(d.end));
  }
  function showToggle() {
    const toggle = $("ob-tz-toggle");
    const other = zone === "UTC" ? browserZone : "UTC";
    $("ob-tz-switch").hidden = zone === browserZone && browserZone === "UTC";
    toggle.textContent = `show in ${other}${other === browserZone ? " (this browser)" : ""}`;
    toggle.dataset.zone = zone === browserZone ? "UTC" : browserZone;
  }

  // how: "push" (a choice: a new history entry), "replace", "keep" (back/forward), "refresh" (the timer)
  async function load(sel, how) {
    const q = new URLSearchParams({range: sel.range});
    if (sel.range === "custom") {
      if (sel.start) q.set("start", sel.start);
      if (sel.end) q.set("end", sel.end);
    }
    let resp, body;
    try {
      resp = await fetch(`${box.dataset.seriesUrl}?${readable(q)}`, {credentials: "same-origin"});
      body = await resp.json();
    } catch (e) {
      if (how !== "refresh") err.textContent = "Could not load the series: the server did not answer.";
      return;
    }
    if (!resp.ok) { err.textContent = body.error || "Could not load the series."; return; }
    err.textContent = zoneWarning;
    shown = sel; data = body;
    render(body);
    if (how === "push" || how === "replace") writeAddress(sel, how);
    if (how !== "refresh") fillInputs(sel, body);
    box.querySelectorAll("button[data-range]").forEach((b) => b.classList.toggle("ob-on", b.dataset.range === sel.range));
    document.body.dataset.loadedRange = sel.range;
    document.body.dataset.loadedQuery = readable(q);
  }

  function custom() {  // the range typed in the inputs, read in the zone shown
    const a = $("ob-start").value, b = $("ob-end").value;
    if (!a) { err.textContent = "Enter the start of the custom range."; return; }
    const from = fromWall(a), to = b ? fromWall(b) : NaN;
    if (isNaN(from) || (b && isNaN(to))) { err.textContent = "Enter the custom range as dates and times."; return; }
    if (b && to <= from) { err.textContent = "The range must start before it ends."; return; }
    load({range: "custom", start: withOffset(from), end: b ? withOffset(to) : ""}, "push");
  }

  box.addEventListener("click", (e) => {
    const r = e.target.dataset.range;
    if (r === "custom") custom();
    else if (r) load({range: r}, "push");
  });
  $("ob-tz-toggle").addEventListener("click", (e) => {
    setZone(e.target.dataset.zone);
    showToggle();
    if (!shown) return;
    if (shown.range === "custom") shown = {range: "custom", start: normalise(shown.start), end: normalise(shown.end)};
    writeAddress(shown, "replace");
    render(data);
    fillInputs(shown, data);
  });
  window.addEventListener("popstate", () => { readZone(); load(fromAddress(), "keep"); });

  function readZone() {
    const asked = new URLSearchParams(window.location.search).get("tz");
    try {
      setZone(asked || browserZone);
    } catch (e) {
      setZone(browserZone);
      zoneWarning = `Unknown time zone ${JSON.stringify(asked)}: times are in ${browserZone}.`;
    }
    showToggle();
  }
  readZone();
  const start = () => load(fromAddress(), "replace");
  if (window.Plotly) start(); else window.addEventListener("load", start);
  setInterval(() => {  // ranges that end now move with the clock
    if (shown && (shown.range !== "custom" || !shown.end)) load(shown, "refresh");
  }, 60000);
})();
