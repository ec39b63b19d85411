/* DLQ triage page: while a scan runs, poll its progress and move the bar; reload the page once it ends.
   Plain JavaScript, no dependencies. */
(function () {
  "use strict";

  var box = document.getElementById("tr-progress");
  if (!box || box.dataset.active !== "true") { return; }
  var failures = 0;
  function set(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = value; }
  }
  function update(p) {
    // The percent is null while the DLQ's depth is unknown: the bar waits, the count still moves.
    if (p.percent !== null) {
      document.getElementById("tr-bar").style.width = p.percent + "%";
      set("tr-percent", p.percent + "%");
    }
    set("tr-examined", p.examined);
    set("tr-depth", p.depth === null ? "?" : p.depth);
    var badge = document.getElementById("tr-status");
    badge.textContent = p.status_label;
    badge.style.background = p.colour;
  }
  function poll() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (p) {
        failures = 0;
        update(p);
        if (p.done) {
          box.dataset.active = "false";
          set("tr-live", "Finished.");
          window.location.reload();
        } else {
          setTimeout(poll, 1000);
        }
      })
      .catch(function (err) {
        failures += 1;
        set("tr-live", "Could not update (" + err.message + "); retrying…");
        setTimeout(poll, Math.min(10000, 1000 * Math.pow(2, failures)));
      });
  }
  setTimeout(poll, 500);
})();
