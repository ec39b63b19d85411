// The overview's refresh: asks only for what changed since the rows, order and counts it holds
// (overview/rows/ with known=…), patches them in place, keeps the filters and the page, and keeps
// every "… ago" of the last-sync column current itself.
(function () {
  // Choosing an account shows it at once (an inline handler would break the Content-Security-Policy).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  // The top spenders read a month of every pipeline's rollups: fetched once, after the page is shown.
  const spenders = document.getElementById("ob-spenders");
  if (spenders) {
    fetch(spenders.dataset.url, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) { spenders.innerHTML = html; })
      .catch(function () { /* the list stays empty; the rows are unaffected */ });
  }
  const table = document.getElementById("ob-overview");
  if (!table) return;
  const body = document.getElementById("ob-rows");
  const every = parseInt(table.dataset.refresh, 10) * 1000;
  let since = parseFloat(table.dataset.at);
  let counts = table.dataset.counts;
  // The server's clock minus ours, so "ago" agrees with the server's.
  let skew = since * 1000 - Date.now();

  // The same wording as pipelines.formatting.ago.
  function ago(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s === 1 ? "1 second ago" : s + " seconds ago";
    if (s < 7200) return Math.floor(s / 60) + " min ago";
    return s < 172800 ? Math.floor(s / 3600) + " h ago" : Math.floor(s / 86400) + " days ago";
  }
  function retime() {
    const now = Date.now() + skew;
    body.querySelectorAll("td.ob-c-sync time[datetime]").forEach(function (t) {
      t.textContent = ago((now - Date.parse(t.getAttribute("datetime"))) / 1000);
    });
  }
  function rows() {
    return Array.from(body.querySelectorAll("tr[data-pk]"));
  }
  function known() {
    return rows().map(function (tr) { return tr.dataset.pk + "." + tr.dataset.etag; }).join(",");
  }
  function fromHtml(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }
  function apply(data) {
    if (data.order) {
      const have = {};
      rows().forEach(function (tr) { have[tr.dataset.pk] = tr; });
      const fresh = data.order.map(function (pk) {
        const html = data.rows[String(pk)];
        return html ? fromHtml(html) : have[String(pk)];
      }).filter(Boolean);
      if (fresh.length) body.replaceChildren.apply(body, fresh);
      else body.innerHTML = data.empty || "";
    }
    if (data.counts) {
      Object.keys(data.counts).forEach(function (key) {
        const el = document.getElementById("ob-" + key);
        if (el) el.innerHTML = data.counts[key];
      });
      counts = data.counts_etag;
    }
    if (data.lines) {
      // The same lines as before: rewrite their numbers (each count is already a link).
      Object.keys(data.lines).forEach(function (key) {
        const line = document.querySelector('#ob-groups tr[data-k="' + CSS.escape(key) + '"]');
        if (!line) return;
        line.querySelectorAll("a.ob-n").forEach(function (a, i) {
          const n = data.lines[key][i];
          a.textContent = n ? n.toLocaleString("en-US") : "·";
          a.classList.toggle("ob-zero", !n);
        });
      });
    }
    if (data.synced) {
      Object.keys(data.synced).forEach(function (pk) {
        const t = body.querySelector('tr[data-pk="' + pk + '"] td.ob-c-sync time');
        if (t) t.setAttribute("datetime", new Date(data.synced[pk] * 1000).toISOString());
      });
    }
    since = data.at;
    skew = data.at * 1000 - Date.now();
    retime();
  }
  async function refresh() {
    const strip = document.getElementById("ob-incidents");
    const params = new URLSearchParams(window.location.search);
    params.set("known", known());
    params.set("counts", counts);
    params.set("since", String(since));
    try {
      const [resp] = await Promise.all([
        fetch(table.dataset.rowsUrl + "?" + params.toString(), {credentials: "same-origin"}),
        strip ? fetch(strip.dataset.url + window.location.search, {credentials: "same-origin"})
          .then(async function (r) { if (r.ok) strip.innerHTML = await r.text(); }) : null,
      ]);
      if (!resp.ok) return;
      apply(await resp.json());
      document.getElementById("ob-updated").textContent = new Date(since * 1000).toISOString().substring(11, 19);
    } catch (e) { /* offline for a moment: try again next time */ }
  }
  setInterval(refresh, every);
})();
