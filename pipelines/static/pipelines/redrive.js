/* Dead-letter queue pages: live task progress, one submit per form, message selection, filter fields.
   Plain JavaScript, no dependencies. */
(function () {
  "use strict";

  // A double-click sends one request: later submits of the same form are ignored.
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      // Disabled after this tick, so the clicked button's name still goes with the form.
      setTimeout(function () {
        form.querySelectorAll("[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });

  // Peeked messages: "select all", and buttons that need a selection.
  var all = document.getElementById("rd-all");
  var picks = Array.prototype.slice.call(document.querySelectorAll(".rd-pick"));
  var needy = document.querySelectorAll("[data-needs-selection]");
  function refreshSelection() {
    var any = picks.some(function (p) { return p.checked; });
    needy.forEach(function (b) { b.disabled = !any; });
  }
  if (all) {
    all.addEventListener("change", function () {
      picks.forEach(function (p) { p.checked = all.checked; });
      refreshSelection();
    });
  }
  picks.forEach(function (p) { p.addEventListener("change", refreshSelection); });
  if (needy.length) { refreshSelection(); }

  // Redrive form: show the inputs of the chosen filter only.
  var kind = document.getElementById("id_filter_kind");
  function refreshFilter() {
    document.querySelectorAll("[data-filter]").forEach(function (row) {
      row.style.display = row.dataset.filter.split(" ").indexOf(kind.value) >= 0 ? "" : "none";
    });
  }
  if (kind) { kind.addEventListener("change", refreshFilter); refreshFilter(); }

  // Task page: poll the progress endpoint while the task is active; reload once it ends.
  var box = document.getElementById("rd-progress");
  if (!box || box.dataset.active !== "true") { return; }
  var failures = 0;
  function set(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = value; }
  }
  function update(p) {
    document.getElementById("rd-bar").style.width = p.percent + "%";
    set("rd-percent", p.percent + "%");
    ["matched", "moved", "failed", "skipped"].forEach(function (k) { set("rd-" + k, p[k]); });
    set("rd-total", p.total === null ? "?" : p.total);
    set("rd-summary", p.summary);
    set("rd-engine", p.engine);
    set("rd-started", p.started);
    set("rd-finished", p.finished_at ? "just now" : (p.started_at ? "running" : "not yet"));
    var badge = document.getElementById("rd-status");
    badge.textContent = p.status_label;
    badge.style.background = p.colour;
  }
  function poll() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (p) {
        failures = 0;
        update(p);
        if (p.active) { setTimeout(poll, 1000); } else { set("rd-live", "Finished."); window.location.reload(); }
      })
      .catch(function (err) {
        failures += 1;
        set("rd-live", "Could not update (" + err.message + "); retrying…");
        setTimeout(poll, Math.min(10000, 1000 * Math.pow(2, failures)));
      });
  }
  setTimeout(poll, 500);
})();
