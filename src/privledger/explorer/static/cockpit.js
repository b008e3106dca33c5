// Live cockpit: poll the JSON twin of this page (its URL in data-api: the explorer may be mounted
// under a tenant's prefix) and swap in the new numbers, charts and health.
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var every = Number(live.dataset.refresh || 5) * 1000;

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function badge(up, error) {
    var cell = document.createElement("td");
    cell.appendChild(text("span", up ? "up" : "down", up ? "badge ok" : "badge bad"));
    if (!up && error) cell.appendChild(text("span", " " + error, "muted"));
    return cell;
  }

  // as the page's filesizeformat(binary) writes sizes
  function size(bytes) {
    var units = ["KiB", "MiB", "GiB", "TiB"];
    if (bytes < 1024) return bytes + (bytes === 1 ? " Byte" : " Bytes");
    var value = bytes, unit = -1;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return value.toFixed(1) + " " + units[unit];
  }

  function health(rows) {
    var body = document.querySelector("#health tbody");
    if (!body) return;
    body.replaceChildren.apply(body, rows.map(function (h) {
      var tr = document.createElement("tr");
      var org = document.createElement("td");
      org.append(h.org_name + " ", text("span", "(org " + h.org_id + ")", "muted"));
      var endpoint = document.createElement("td");
      endpoint.appendChild(text("code", h.endpoint || "none"));
      tr.append(org, endpoint, badge(h.up, h.error),
        text("td", h.latency_ms === null ? "–" : h.latency_ms.toFixed(1) + " ms", "num"),
        text("td", h.block_number === null ? "–" : String(h.block_number), "num"));
      return tr;
    }));
  }

  function apply(s) {
    var fields = {
      tasks_total: s.tasks_total, settled: s.outcomes.settled, failed: s.outcomes.failed,
      datasets: s.datasets, nodes_up: s.nodes_up + "/" + s.health.length,
      head: s.head === null ? "–" : s.head,
      resource_tasks: s.resources.tasks, cpu_seconds: s.resources.cpu_seconds.toFixed(1) + " s",
      bytes_sent: size(s.resources.bytes_sent), bytes_received: size(s.resources.bytes_received),
      peak_rss_bytes: size(s.resources.peak_rss_bytes), shared_tasks: s.resources.shared_tasks
    };
    Object.keys(fields).forEach(function (name) {
      var el = document.querySelector('[data-field="' + name + '"]');
      if (el) el.textContent = fields[name];
    });
    // the charts are SVG drawn by this node from ledger numbers, labels escaped server-side
    Object.keys(s.charts).forEach(function (name) {
      var box = document.querySelector('[data-chart="' + name + '"]');
      if (box) box.innerHTML = s.charts[name];
    });
    health(s.health);
    document.getElementById("updated").textContent =
      new Date(s.generated_at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }

  function poll() {
    fetch(live.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (s) { live.classList.remove("stale"); apply(s); })
      .catch(function () { live.classList.add("stale"); })
      .finally(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
