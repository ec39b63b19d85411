// Refreshes the overview's rows in place, keeping the filters.
(function () {
  const table = document.getElementById("ob-overview");
  if (!table) return;
  const every = parseInt(table.dataset.refresh, 10) * 1000;
  async function refresh() {
    try {
      const resp = await fetch(table.dataset.rowsUrl + window.location.search, {credentials: "same-origin"});
      if (!resp.ok) return;
      document.getElementById("ob-rows").innerHTML = await resp.text();
      const stamp = document.getElementById("ob-updated");
      stamp.textContent = new Date().toISOString().substring(11, 19);
    } catch (e) { /* offline for a moment: try again next time */ }
  }
  setInterval(refresh, every);
})();
