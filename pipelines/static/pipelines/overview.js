// Refreshes the overview's rows and its incident strip in place, keeping the filters.
(function () {
  // Choosing an account shows it at once (an inline handler would break the Content-Security-Policy).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  const table = document.getElementById("ob-overview");
  if (!table) return;
  const every = parseInt(table.dataset.refresh, 10) * 1000;
  async function load(url, into) {
    const resp = await fetch(url + window.location.search, {credentials: "same-origin"});
    if (!resp.ok) return false;
    into.innerHTML = await resp.text();
    return true;
  }
  async function refresh() {
    const strip = document.getElementById("ob-incidents");
    try {
      const [rows] = await Promise.all([
        load(table.dataset.rowsUrl, document.getElementById("ob-rows")),
        strip ? load(strip.dataset.url, strip) : null,
      ]);
      if (rows) document.getElementById("ob-updated").textContent = new Date().toISOString().substring(11, 19);
    } catch (e) { /* offline for a moment: try again next time */ }
  }
  setInterval(refresh, every);
})();
