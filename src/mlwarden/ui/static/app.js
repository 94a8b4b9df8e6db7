/* mlwarden dashboard: live updates by polling small JSON endpoints, charts with Plotly.react
   (uirevision keeps the user's zoom across updates). No framework, nothing loaded from outside. */
"use strict";
(function () {
  const POLL_MS = 5000;
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const COLORS = ["#1f6feb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777"];
  const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];

  function setText(el, value) {
    if (el && el.textContent !== value) { el.textContent = value; el.classList.add("changed");
      setTimeout(() => el.classList.remove("changed"), 1500); }
  }
  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    return Number(v).toPrecision(digits || 3).replace(/\.?0+(e|$)/, "$1");
  }
  function stamp() {
    const el = document.getElementById("live-status");
    if (el) el.textContent = "Live · updated " + new Date().toLocaleTimeString();
  }
  function poll(url, apply) {
    let timer = null;
    async function tick() {
      if (!document.hidden) {
        try {
          const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
          if (r.status === 401) { window.location.reload(); return; }
          if (r.ok) { apply(await r.json()); stamp(); }
        } catch (e) { const el = document.getElementById("live-status"); if (el) el.textContent = "Live updates paused: server unreachable"; }
      }
      timer = setTimeout(tick, POLL_MS);
    }
    timer = setTimeout(tick, POLL_MS);
    return () => clearTimeout(timer);
  }
  function navCount(n) { setText(document.getElementById("nav-approvals"), String(n)); }

  const ICONS = { healthy: "✓", degraded: "!", failing: "✕", disabled: "‖", unknown: "?" };

  function liveOverview() {
    const table = document.getElementById("fleet");
    if (!table) return;
    poll(table.dataset.liveUrl, (data) => {
      navCount(data.pending_approvals);
      for (const m of data.models) {
        const row = table.querySelector(`tr[data-model="${CSS.escape(m.name)}"]`);
        if (!row) continue;
        const badge = row.querySelector('[data-field="status"]');
        if (badge && !badge.classList.contains("status-" + m.status)) {
          badge.className = "status status-" + m.status;
          badge.innerHTML = `<span aria-hidden="true">${ICONS[m.status]}</span> `;
          badge.append(document.createTextNode(m.status_label));
        }
        setText(row.querySelector('[data-field="reason"]'), m.reason);
        setText(row.querySelector('[data-field="open_incidents"]'), String(m.open_incidents));
        setText(row.querySelector('[data-field="live_version"]'), m.live_version ? "v" + m.live_version : "not deployed");
        setText(row.querySelector('[data-field="performance"]'), fmt(m.performance));
        setText(row.querySelector('[data-field="latency_p99_ms"]'), fmt(m.latency_p99_ms));
        setText(row.querySelector('[data-field="error_rate"]'), fmt(m.error_rate));
        setText(row.querySelector('[data-field="last_window"]'), m.last_window === null ? "–" : String(m.last_window));
        if (m.last_ts) setText(row.querySelector('[data-field="last_ts"]'), m.last_ts.replace("T", " ").slice(0, 19) + " UTC");
      }
    });
  }

  function peak(values) {
    let m = 0;
    for (const v of values || []) if (v !== null && isFinite(v)) m = Math.max(m, Math.abs(v));
    return m;
  }
  function lineTraces(data, names) {
    // a series an order of magnitude away from the first one gets the right-hand axis
    const first = peak(data.series[names[0]]) || 1;
    return names.map((name, k) => {
      const ratio = peak(data.series[name]) / first;
      const right = k > 0 && (ratio > 10 || (ratio > 0 && ratio < 0.1));
      return {
        type: "scatter", mode: "lines+markers", name: name + (right ? " (right axis)" : ""),
        x: data.windows, y: data.series[name], yaxis: right ? "y2" : "y",
        line: { color: COLORS[k % COLORS.length], dash: DASHES[k % DASHES.length], width: 2 },
        marker: { size: 5, symbol: ["circle", "square", "diamond", "triangle-up", "x"][k % 5] },
        connectgaps: false,
      };
    });
  }
  function plot(fig, traces, layout) {
    fig.style.height = layout.height + "px";
    Plotly.react(fig, traces, layout, PLOT_CONFIG);
  }
  function baseLayout(title, extra) {
    return Object.assign({
      title: { text: title, font: { size: 14 }, x: 0, xanchor: "left" },
      margin: { l: 48, r: 48, t: 36, b: 30 }, height: 260,
      xaxis: { title: { text: "" } }, legend: { orientation: "h", y: -0.14, yanchor: "top" },
      uirevision: "keep", paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    }, extra || {});
  }
  function drawModel(data) {
    document.querySelectorAll("figure.chart[data-groups]").forEach((fig) => {
      const names = fig.dataset.groups.split(",").flatMap((g) => data.groups[g] || []);
      if (!names.length) {
        fig.classList.add("nodata");
        fig.innerHTML = `<figcaption>${fig.dataset.title}: no signal of this kind yet.</figcaption>`;
        fig.dataset.drawn = "";
        return;
      }
      if (fig.classList.contains("nodata")) { fig.classList.remove("nodata"); fig.innerHTML = ""; }
      const traces = lineTraces(data, names.slice(0, 12));
      const extra = traces.some((t) => t.yaxis === "y2")
        ? { yaxis2: { overlaying: "y", side: "right", showgrid: false } } : {};
      plot(fig, traces, baseLayout(fig.dataset.title, extra));
    });
    const drift = document.getElementById("chart-drift");
    if (drift) {
      const hm = data.heatmap;
      if (!hm.features.length) {
        drift.classList.add("nodata");
        drift.innerHTML = "<figcaption>No per-feature drift score stored yet.</figcaption>";
        return;
      }
      if (drift.classList.contains("nodata")) { drift.classList.remove("nodata"); drift.innerHTML = ""; }
      plot(drift, [{
        type: "heatmap", x: data.windows, y: hm.features, z: hm.z, colorscale: "YlOrRd", reversescale: true,
        colorbar: { title: { text: hm.stat } }, hovertemplate: "%{y}<br>window %{x}<br>" + hm.stat + " %{z:.3g}<extra></extra>",
      }], baseLayout("Drift by feature (" + hm.stat + "), features × windows", { height: 120 + 26 * hm.features.length, margin: { l: 90, r: 12, t: 36, b: 30 } }));
      if (!drift.dataset.clickBound) {
        drift.dataset.clickBound = "1";
        drift.on("plotly_click", (ev) => {
          const feature = ev.points && ev.points[0] && ev.points[0].y;
          if (feature) window.location.href = drift.dataset.featuresUrl + encodeURIComponent(feature);
        });
      }
    }
  }
  function modelPage() {
    const holder = document.getElementById("model-data");
    if (!holder) return;
    const charts = document.getElementById("charts");
    if (charts) drawModel(JSON.parse(holder.textContent));
    const url = charts ? charts.dataset.liveUrl : null;
    if (!url) return;
    poll(url, (data) => {
      drawModel(data);
      const dep = data.deployment;
      if (dep) {
        setText(document.getElementById("dep-live"), "v" + dep.live_version);
        setText(document.getElementById("dep-revision"), dep.revision + " by " + dep.actor + ", " + dep.created_at.replace("T", " ").slice(0, 19) + " UTC");
      }
    });
  }

  function featurePage() {
    const holder = document.getElementById("feature-data");
    if (!holder) return;
    const d = JSON.parse(holder.textContent);
    if (!d.x || !d.x.length) return;
    plot(document.getElementById("chart-feature"), [
      { type: "bar", name: "reference", x: d.x, y: d.reference, marker: { color: "#94a3b8", pattern: { shape: "" } } },
      { type: "bar", name: "recent", x: d.x, y: d.recent, marker: { color: "#1f6feb", pattern: { shape: "/" } } },
    ], baseLayout(d.feature + ": share of rows", { barmode: "group", height: 360, xaxis: { title: { text: d.feature } }, yaxis: { tickformat: ".0%" } }));
  }

  function incidentPage() {
    const holder = document.getElementById("culprit-data");
    if (holder) {
      const c = JSON.parse(holder.textContent);
      plot(document.getElementById("chart-culprits"), [{
        type: "bar", orientation: "h", x: c.map((r) => r.score), y: c.map((r) => r.feature),
        text: c.map((r) => r.drift_source), marker: { color: "#d97706" },
        hovertemplate: "%{y}: score %{x:.3g}<br>%{text}<extra></extra>",
      }], baseLayout("Culprit score", { height: 80 + 28 * c.length, xaxis: { title: { text: "score" } }, yaxis: { autorange: "reversed" }, margin: { l: 160, r: 12, t: 36, b: 30 } }));
    }
    const head = document.getElementById("incident-head");
    if (!head) return;
    let before = null;
    poll(head.dataset.liveUrl, (data) => {
      const key = JSON.stringify([data.state, data.actions, data.verifications, data.timeline]);
      if (before !== null && key !== before) {
        const st = head.querySelector('[data-field="state"]');
        setText(st, data.state);
        for (const a of data.actions) {
          const cell = document.querySelector(`tr[data-action="${a.id}"] [data-field="action-state"]`);
          setText(cell, a.state);
        }
        const note = document.getElementById("live-status");
        if (note) note.textContent = "This incident changed: reload for the full timeline.";
      }
      before = key;
    });
  }

  function everyPage() {
    if (document.getElementById("fleet")) return;  // the overview polls its own endpoint
    const badge = document.getElementById("nav-approvals");
    if (!badge || !document.body.dataset.csrf) return;
    const url = document.querySelector("a.brand").getAttribute("href").replace(/\/$/, "") + "/live/counts";
    poll(url, (data) => navCount(data.pending_approvals));
  }

  window.mlw = { liveOverview, modelPage, featurePage, incidentPage, poll };
  document.addEventListener("DOMContentLoaded", everyPage);
})();
