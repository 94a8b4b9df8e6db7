/* mlwarden dashboard: live updates by polling small JSON endpoints, charts with Plotly.react
   (uirevision keeps the user's zoom across updates). No framework, nothing loaded from outside. */
"use strict";
(function () {
  // how often the live parts ask the server (Settings.ui_refresh_s)
  const POLL_MS = Number(document.body.dataset.refreshMs) || 5000;
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const COLORS = ["#1f6feb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777"];
  const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];

  function setText(el, value) {
    if (el && el.textContent !== value) { el.textContent = value; el.classList.add("changed");
      setTimeout(() => el.classList.remove("changed"), 1500); }
  }
  // an ISO time as the pages print it (the server's "when" filter)
  function utcText(ts) { return String(ts || "").replace("T", " ").slice(0, 19) + " UTC"; }
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
    const prefix = document.querySelector("a.brand").getAttribute("href").replace(/\/$/, "");
    poll(table.dataset.liveUrl, (data) => {
      navCount(data.pending_approvals);
      for (const [key, n] of Object.entries(data.counts || {})) {
        setText(document.querySelector(`.summary [data-count="${key}"]`), String(n));
      }
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
        const chip = row.querySelector('[data-field="incident_chip"]');
        const chipKey = m.newest_incident === null ? "" : m.worst_severity + "#" + m.newest_incident;
        if (chip && chip.dataset.key !== chipKey) {
          chip.dataset.key = chipKey;
          chip.textContent = "";
          if (m.newest_incident !== null) {
            const sev = document.createElement("span");
            sev.className = "sev sev-" + m.worst_severity;
            sev.textContent = m.worst_severity;
            const link = document.createElement("a");
            link.href = `${prefix}/incidents/${m.newest_incident}`;
            link.textContent = "#" + m.newest_incident;
            chip.append(" · ", sev, " ", link);
          }
        }
        for (const field of ["spark_performance", "spark_latency"]) {
          const cell = row.querySelector(`[data-field="${field}"]`);
          if (cell && cell.dataset.svg !== m[field]) { cell.dataset.svg = m[field]; cell.innerHTML = m[field]; }  // our own SVG
        }
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
  // stored times are ISO with a UTC offset; Plotly's date axis wants them without one
  function plotTime(iso) { return iso ? iso.replace("T", " ").replace(/(Z|[+-]00:?00)$/, "") : iso; }
  const TIME_AXIS = { type: "date" };  // each point is a window, at its end time (UTC)
  const MARKERS = {
    deploy: { name: "deployments", color: "#2563eb", dash: "dash", symbol: "diamond" },
    incident: { name: "incidents opened", color: "#dc2626", dash: "solid", symbol: "triangle-down" },
    action: { name: "agent actions", color: "#059669", dash: "dot", symbol: "square" },
  };
  // deployments, incidents and actions: a vertical line each, and a marker at the top of the
  // chart (on an invisible 0-1 axis) whose hover says what happened; clicking opens its page
  function markerParts(data) {
    const shapes = [], traces = [];
    for (const [kind, style] of Object.entries(MARKERS)) {
      const found = (data.markers || []).filter((m) => m.kind === kind);
      if (!found.length) continue;
      for (const m of found) {
        shapes.push({ type: "line", xref: "x", yref: "paper", x0: plotTime(m.ts), x1: plotTime(m.ts), y0: 0, y1: 1,
          line: { color: style.color, width: 1, dash: style.dash }, layer: "below" });
      }
      traces.push({
        type: "scatter", mode: "markers", name: style.name, yaxis: "y3", meta: kind,
        x: found.map((m) => plotTime(m.ts)), y: found.map(() => 0.97),
        hovertext: found.map((m) => m.label), customdata: found.map((m) => m.url || ""),
        hovertemplate: "%{hovertext}<br>%{x} UTC<extra></extra>",
        marker: { color: style.color, symbol: style.symbol, size: 10 },
      });
    }
    return { shapes, traces };
  }
  const MARKER_AXIS = { yaxis3: { overlaying: "y", range: [0, 1], visible: false, fixedrange: true } };
  function bindMarkerClicks(fig) {
    if (fig.dataset.clickBound) return;
    fig.dataset.clickBound = "1";
    fig.on("plotly_click", (ev) => {
      const point = ev.points && ev.points[0];
      if (point && point.data.yaxis === "y3" && point.customdata) window.location.href = point.customdata;
    });
  }
  function lineTraces(data, names) {
    // a series an order of magnitude away from the first one gets the right-hand axis
    const first = peak(data.series[names[0]]) || 1;
    const x = data.times.map(plotTime);
    return names.map((name, k) => {
      const ratio = peak(data.series[name]) / first;
      const right = k > 0 && (ratio > 10 || (ratio > 0 && ratio < 0.1));
      return {
        type: "scatter", mode: "lines+markers", name: name + (right ? " (right axis)" : ""),
        x, y: data.series[name], yaxis: right ? "y2" : "y", customdata: data.windows,
        hovertemplate: "%{y:.4g}<br>window %{customdata}, %{x} UTC<extra>" + name + "</extra>",
        line: { color: COLORS[k % COLORS.length], dash: DASHES[k % DASHES.length], width: 2 },
        marker: { size: 5, symbol: ["circle", "square", "diamond", "triangle-up", "x"][k % 5] },
        connectgaps: false,
      };
    });
  }
  // the interval as a filled band: the upper bound drawn invisibly, the lower one filled up to it
  function bandTraces(data, bounds, color, name) {
    if (!bounds) return [];
    const x = data.times.map(plotTime);
    return [
      { type: "scatter", mode: "lines", x, y: data.series[bounds[1]], line: { width: 0, color }, hoverinfo: "skip",
        showlegend: false, legendgroup: name, name: name + " (upper)", connectgaps: false },
      { type: "scatter", mode: "lines", x, y: data.series[bounds[0]], line: { width: 0, color }, fill: "tonexty",
        fillcolor: color, hoverinfo: "skip", legendgroup: name, name, connectgaps: false, meta: "band" },
    ];
  }
  function metricTraces(data, panel) {
    const traces = [];
    const line = (name, label, color, dash) => ({
      type: "scatter", mode: "lines+markers", name: label, x: data.times.map(plotTime), y: data.series[name],
      customdata: data.windows, connectgaps: false,
      hovertemplate: "%{y:.4g}<br>window %{customdata}, %{x} UTC<extra>" + label + "</extra>",
      line: { color, dash, width: 2 }, marker: { size: 5, color },
    });
    if (panel.estimated) {
      traces.push(...bandTraces(data, panel.estimated_band, "rgba(217,119,6,0.15)", "estimated: 95% interval"));
      traces.push(line(panel.estimated, "estimated (no labels needed)", "#d97706", "dash"));
    }
    if (panel.measured) {
      traces.push(...bandTraces(data, panel.band, "rgba(31,111,235,0.18)", "measured: 95% interval"));
      traces.push(line(panel.measured, "measured on labels", "#1f6feb", "solid"));
    }
    return traces;
  }
  function plot(fig, traces, layout) {
    fig.style.height = layout.height + "px";
    Plotly.react(fig, traces, layout, PLOT_CONFIG);
  }
  function baseLayout(title, extra) {
    return Object.assign({
      title: { text: title, font: { size: 14 }, x: 0, xanchor: "left" },
      margin: { l: 48, r: 48, t: 36, b: 30 }, height: 260,
      xaxis: { title: { text: "" } }, legend: { orientation: "h", y: -0.2, yanchor: "top" },
      uirevision: "keep", paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    }, extra || {});
  }
  function noData(fig, text) {
    fig.classList.add("nodata");
    fig.innerHTML = `<figcaption>${text}</figcaption>`;
  }
  function dataFor(fig) {
    if (fig.classList.contains("nodata")) { fig.classList.remove("nodata"); fig.innerHTML = ""; }
  }
  function drawPerformance(data, marks) {
    const fig = document.getElementById("chart-performance");
    const choice = document.getElementById("metric-choice");
    if (!fig || !choice) return;
    const panels = data.metrics || [];
    const wanted = choice.value;
    const options = panels.map((p) => p.metric).join(",");
    if (choice.dataset.options !== options) {  // (re)fill the choice only when metrics change
      choice.dataset.options = options;
      choice.innerHTML = "";
      for (const p of panels) choice.append(new Option(p.metric, p.metric));
      if (panels.some((p) => p.metric === wanted)) choice.value = wanted;
    }
    choice.closest(".metric-choice").hidden = panels.length < 2;
    const panel = panels.find((p) => p.metric === choice.value) || panels[0];
    if (!panel) { noData(fig, "Performance: no metric yet (labels or an estimate are needed)."); return; }
    dataFor(fig);
    const shapes = [...marks.shapes];
    const annotations = [];
    const reference = (data.reference || {}).metrics || {};
    if (reference[panel.metric] !== undefined) {
      const level = reference[panel.metric];
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: level, y1: level,
        line: { color: "#475569", width: 1.5, dash: "longdash" }, name: "reference" });
      annotations.push({ xref: "paper", x: 0, xanchor: "left", yref: "y", y: level, yanchor: "bottom", showarrow: false,
        text: `reference ${fmt(level)} (v${data.reference.version} on its holdout)`, font: { size: 11, color: "#475569" } });
    }
    plot(fig, [...metricTraces(data, panel), ...marks.traces], baseLayout(panel.metric + " over time, with its 95% interval", Object.assign({
      height: 340, xaxis: TIME_AXIS, yaxis: { title: { text: panel.metric } }, shapes, annotations,
    }, MARKER_AXIS)));
    bindMarkerClicks(fig);
    if (!choice.dataset.bound) {
      choice.dataset.bound = "1";
      choice.addEventListener("change", () => drawPerformance(window.mlw.lastModelData, markerParts(window.mlw.lastModelData)));
    }
  }
  function drawHeatmaps(data) {
    const fig = document.getElementById("chart-drift");
    if (!fig) return;
    const hm = data.heatmap, q = data.quality || { features: [] };
    if (!hm.features.length && !q.features.length) { noData(fig, "No per-feature drift score or data-quality rate stored yet."); return; }
    dataFor(fig);
    const x = data.times.map(plotTime);
    const traces = [];
    const both = hm.features.length && q.features.length;
    const driftRows = hm.features.length, qualityRows = q.features.length;
    const total = driftRows + qualityRows;
    const split = both ? qualityRows / total : 0;
    const layout = { height: 150 + 24 * total + (both ? 40 : 0), margin: { l: 90, r: 12, t: 36, b: 40 }, xaxis: TIME_AXIS };
    if (driftRows) {
      traces.push({ type: "heatmap", name: "drift", x, y: hm.features, z: hm.z, customdata: hm.z.map(() => data.windows), colorscale: "YlOrRd", reversescale: true,
        colorbar: { title: { text: hm.stat }, y: both ? 1 : 0.5, yanchor: both ? "top" : "middle", len: both ? 1 - split - 0.05 : 1 },
        hovertemplate: "%{y}<br>window %{customdata}, %{x} UTC<br>" + hm.stat + " %{z:.3g}<extra>drift</extra>" });
      layout.yaxis = { domain: both ? [split + 0.06, 1] : [0, 1], title: { text: "drift", font: { size: 11 } } };
    }
    if (qualityRows) {
      traces.push({ type: "heatmap", name: "data quality", x, y: q.features, z: q.z, text: q.text, customdata: q.z.map(() => data.windows),
        yaxis: driftRows ? "y2" : "y", colorscale: [[0, "#f5f3ff"], [0.05, "#ddd6fe"], [1, "#5b21b6"]], zmin: 0, zmax: 1,
        colorbar: { title: { text: "bad rows" }, tickformat: ".0%", y: 0, yanchor: "bottom", len: both ? split : 1 },
        hovertemplate: "%{y}<br>window %{customdata}, %{x} UTC<br>%{text}<extra>data quality</extra>" });
      layout[driftRows ? "yaxis2" : "yaxis"] = { domain: both ? [0, split] : [0, 1], title: { text: "quality", font: { size: 11 } } };
    }
    const title = driftRows && qualityRows ? `Drift (${hm.stat}) and data quality (share of rows null, invalid or unseen) by feature`
      : driftRows ? `Drift by feature (${hm.stat})` : "Data quality by feature (share of rows null, invalid or unseen)";
    plot(fig, traces, baseLayout(title, layout));
    if (!fig.dataset.featureClick) {
      fig.dataset.featureClick = "1";
      fig.on("plotly_click", (ev) => {
        const feature = ev.points && ev.points[0] && ev.points[0].y;
        if (feature) window.location.href = fig.dataset.featuresUrl + encodeURIComponent(feature);
      });
    }
  }
  function drawModel(data) {
    window.mlw.lastModelData = data;
    const marks = markerParts(data);
    drawPerformance(data, marks);
    document.querySelectorAll("figure.chart[data-groups]").forEach((fig) => {
      const names = fig.dataset.groups.split(",").flatMap((g) => data.groups[g] || []);
      if (!names.length) { noData(fig, `${fig.dataset.title}: no signal of this kind yet.`); return; }
      dataFor(fig);
      const traces = lineTraces(data, names.slice(0, 6));
      const extra = traces.some((t) => t.yaxis === "y2")
        ? { yaxis2: { overlaying: "y", side: "right", showgrid: false } } : {};
      plot(fig, [...traces, ...marks.traces], baseLayout(fig.dataset.title, Object.assign({ xaxis: TIME_AXIS, shapes: marks.shapes }, extra, MARKER_AXIS)));
      bindMarkerClicks(fig);
    });
    drawHeatmaps(data);
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
    // a text feature: its length histogram on the reference's bins (the rates and words are a table)
    const text = d.kind === "text";
    const title = text ? d.feature + ": length of the values (characters), share of values" : d.feature + ": share of rows";
    plot(document.getElementById("chart-feature"), [
      { type: "bar", name: "reference", x: d.x, y: d.reference, marker: { color: "#94a3b8", pattern: { shape: "" } } },
      { type: "bar", name: "recent", x: d.x, y: d.recent, marker: { color: "#1f6feb", pattern: { shape: "/" } } },
    ], baseLayout(title, { barmode: "group", height: 360, xaxis: text ? { title: { text: "characters" }, type: "category" } : { title: { text: d.feature } }, yaxis: { tickformat: ".0%" } }));
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
      // what the agent keeps changing while an incident is open: its windows, severity, timeline
      setText(head.querySelector('[data-field="windows"]'), `${data.first_window}–${data.last_window}`);
      const sev = head.querySelector('[data-field="severity"] .sev');
      if (sev && sev.textContent !== data.severity) {
        sev.className = "sev sev-" + data.severity;
        setText(sev, data.severity);
      }
      const timeline = document.getElementById("timeline");
      for (const entry of (data.timeline_entries || []).slice(timeline ? timeline.children.length : 0)) {
        const item = document.createElement("li");
        const when = document.createElement("span");
        when.className = "muted small";
        when.textContent = utcText(entry.ts);
        const what = document.createElement("strong");
        what.textContent = entry.event;
        item.append(when, " ", what, " " + (entry.text || ""));
        if (entry.event === "note" && entry.actor) {
          const author = document.createElement("span");
          author.className = "muted";
          author.textContent = "— " + entry.actor;
          item.append(" ", author);
        }
        item.classList.add("changed");
        timeline.append(item);
      }
      // who is on it: the on-call section's acknowledgement and assignee (notes are on the timeline)
      const oncall = data.oncall || {};
      if (oncall.acknowledged) {
        setText(document.querySelector('#oncall [data-field="acknowledged"]'),
          `by ${oncall.acknowledged.by} at ${utcText(oncall.acknowledged.at)}`);
      }
      if (oncall.assignee) {
        setText(document.querySelector('#oncall [data-field="assignee"]'),
          `${oncall.assignee.name} (assigned by ${oncall.assignee.by} at ${utcText(oncall.assignee.at)})`);
      }
      // a diagnosis shown from the window before: say when the newest one is ready
      const stale = document.getElementById("diagnosis-stale");
      if (stale && data.diagnosis_current) {
        setText(stale.querySelector('[data-field="diagnosis-ready"]'), "It is ready: reload to see it.");
      }
      const key = JSON.stringify([data.state, data.actions, data.verifications, data.timeline]);
      if (before !== null && key !== before) {
        const st = head.querySelector('[data-field="state"]');
        setText(st, data.state);
        for (const a of data.actions) {
          const cell = document.querySelector(`tr[data-action="${a.id}"] [data-field="action-state"]`);
          setText(cell, a.state);
        }
        const note = document.getElementById("live-status");
        if (note) note.textContent = "This incident changed: reload for its decisions and verifications.";
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

  window.mlw = { liveOverview, modelPage, featurePage, incidentPage, poll, lastModelData: null };
  document.addEventListener("DOMContentLoaded", everyPage);
})();
