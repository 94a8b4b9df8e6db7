/* mlwarden dashboard: the investigations' pages follow their jobs live (polling small JSON
   endpoints with mlw.poll from app.js): the list its rows' state, probes and verdict; a running
   investigation's page its progress and the windows judged so far, then it reloads itself once
   the job has ended, for the diagnosis, recommendations and report. */
"use strict";
(function () {
  const FINISHED = ["done", "failed"];

  function setText(el, value) {
    if (el && el.textContent !== value) { el.textContent = value; el.classList.add("changed");
      setTimeout(() => el.classList.remove("changed"), 1500); }
  }
  function stateChip(cell, st) {
    if (!cell) return;
    const chip = cell.querySelector(".state");
    if (chip && chip.textContent !== st) { chip.className = "state state-" + st; setText(chip, st); }
  }
  function verdictText(row) {
    const b = row.brief || {};
    if (row.state === "failed") return "failed: " + (row.error || "");
    if (row.state !== "done") {
      const p = row.progress || {};
      return (p.stage || row.state) + (p.message ? ": " + p.message : "");
    }
    if (b.incident) return (b.severity || "") + " " + (b.root_cause || "no playbook matched");
    return "no incident";
  }

  function listPage() {
    const table = document.getElementById("investigations");
    if (!table) return;
    window.mlw.poll(table.dataset.liveUrl, (data) => {
      let unseen = 0;
      for (const row of data.investigations) {
        const tr = table.querySelector(`tr[data-id="${row.id}"]`);
        if (!tr) { unseen += 1; continue; }
        if (tr.dataset.state === row.state && FINISHED.includes(row.state)) continue;
        tr.dataset.state = row.state;
        stateChip(tr.querySelector('[data-field="state"]'), row.state);
        const p = row.progress || {};
        setText(tr.querySelector('[data-field="probes"]'), `${p.done || 0} / ${p.total || 0}`);
        const b = row.brief || {};
        setText(tr.querySelector('[data-field="findings"]'), b.findings === null || b.findings === undefined ? "–" : String(b.findings));
        const verdict = tr.querySelector('[data-field="verdict"]');
        const b2 = row.brief || {};
        if (verdict && row.state === "done" && b2.incident) {  // the severity chip, as rendered
          const sev = document.createElement("span");
          sev.className = "sev sev-" + (b2.severity || "");
          sev.textContent = b2.severity || "";
          verdict.replaceChildren(sev, " " + (b2.root_cause || "no playbook matched"));
          verdict.classList.add("changed");
        } else {
          setText(verdict, verdictText(row));
        }
      }
      if (unseen) {
        const note = document.getElementById("live-status");
        if (note) note.textContent = `${unseen} new investigation${unseen > 1 ? "s" : ""}: reload to see ${unseen > 1 ? "them" : "it"}.`;
      }
    });
  }

  function detailPage() {
    const head = document.getElementById("investigation-head");
    if (!head || FINISHED.includes(head.dataset.state)) return;  // an ended job does not change
    const card = document.getElementById("progress-card");
    window.mlw.poll(head.dataset.liveUrl, (data) => {
      const p = data.progress || {};
      const bar = document.getElementById("inv-progress");
      if (bar) { bar.max = p.total || bar.max; bar.value = p.done || 0; bar.textContent = (p.percent || 0) + "%"; }
      for (const key of ["done", "total", "percent", "errors", "stage", "window", "message"]) {
        if (p[key] !== undefined) setText(card.querySelector(`[data-field="${key}"]`), String(p[key]));
      }
      stateChip(head.querySelector('[data-field="state"]'), data.state);
      const body = document.querySelector("#windows tbody");
      for (const w of data.windows.slice(body ? body.children.length : 0)) {
        const tr = document.createElement("tr");
        tr.dataset.window = String(w.window);
        const cells = [String(w.window), `${w.n} (${w.errors} failed)`, ""].map((text) => {
          const td = document.createElement("td"); td.textContent = text; return td;
        });
        const found = document.createElement("td");
        if (w.findings.length) {
          const list = document.createElement("ul");
          list.className = "small";
          for (const f of w.findings) {
            const item = document.createElement("li");
            const kind = document.createElement("strong");
            kind.textContent = f.kind;
            item.append(kind, " " + f.message);
            list.append(item);
          }
          found.append(list);
        } else {
          const none = document.createElement("span"); none.className = "ok"; none.textContent = "none"; found.append(none);
        }
        tr.append(...cells, found);
        tr.classList.add("changed");
        body.append(tr);
        const empty = document.getElementById("windows-empty");
        if (empty) empty.remove();
      }
      if (data.baseline && document.getElementById("baseline-empty")) {
        setText(document.getElementById("baseline-empty"),
          `Learned from ${data.baseline.probes} probes: confidence mean ${data.baseline.confidence_mean === null ? "–" : Number(data.baseline.confidence_mean).toPrecision(3)}.`);
      }
      if (data.finished) {
        setText(document.getElementById("live-status"), "The investigation has ended: loading its diagnosis.");
        window.location.replace(window.location.pathname);  // without the start's message
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => { listPage(); detailPage(); });
})();
