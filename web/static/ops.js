// Operations: figures, replay progress and charts polled from /stats.

import { $, phone } from "./dom.js";
import { TYPES, fmtDuration, fmtInt, fmtMs } from "./format.js";
import { getJSON } from "./api.js";
import { OpsCharts } from "./charts.js";

let statsInFlight = false;
let charts = null;

function showReplay(s) {
  const replay = s.replay ?? {};
  let share = 0;
  let text = "idle";
  let eta = "";
  if (replay.total) {
    // Older servers report no count of replayed events; events applied stand in for it.
    const done = replay.replayed ?? replay.sent ?? s.events ?? 0;
    share = replay.state === "finished" ? 1 : Math.min(1, done / replay.total);
    const counts = `${fmtInt.format(Math.min(done, replay.total))} / ${fmtInt.format(replay.total)}`;
    if (replay.state === "finished") {
      text = `done · ${fmtInt.format(replay.total)}`;
      eta = "finished";
    } else {
      text = counts;
      // The server's estimate; an older server's replay gives none, so the overall rate
      // stands in for the replay's own.
      const rate = replay.events_per_s ?? s.events_per_s;
      const left = typeof replay.eta_s === "number" && Number.isFinite(replay.eta_s)
        ? replay.eta_s
        : typeof rate === "number" && rate > 0 ? (replay.total - done) / rate : null;
      eta = left !== null && left >= 0 ? `ETA ${fmtDuration(left)}` : "";
    }
  }
  $("ops-replay").textContent = text;
  $("ops-replay").title = replay.total ? `${Math.floor(share * 100)}% of the replay applied` : "";
  $("ops-replay-eta").textContent = eta;
  $("ops-replay-bar").style.width = `${share * 100}%`;
}

/** A share in two digits without the leading zero: ".94" (the strip is narrow). */
const short = (value) => value.toFixed(2).replace(/^0(?=\.)/, "");

/** Each re-ranker's recall beside its prior's, on the same learned events; the one that
 * serves in bold, and the whole story in the tooltip. */
function showModels(models) {
  $("ops-models-item").hidden = !models;
  for (const type of models ? TYPES : []) {
    const m = models[type];
    const cell = $(`ops-models-${type}`);
    cell.replaceChildren();
    if (!m || !m.judged) {
      cell.textContent = "–";
      cell.title = `${type}: nothing learned yet; the prior serves`;
      continue;
    }
    const model = document.createElement(m.serving === "model" ? "b" : "span");
    model.textContent = short(m.model);
    const prior = document.createElement(m.serving === "prior" ? "b" : "span");
    prior.textContent = short(m.prior);
    cell.append(model, "/", prior);
    cell.title = `${type}: recall@20 on ${fmtInt.format(m.judged)} learned events, ` +
      `model ${m.model.toFixed(3)}, prior ${m.prior.toFixed(3)}; the ${m.serving} serves`;
  }
}

export async function pollStats() {
  if (statsInFlight) return;
  statsInFlight = true;
  try {
    const s = await getJSON("/stats");
    $("ops-rate").textContent = fmtInt.format(Math.round(s.events_per_s ?? 0));
    $("ops-events").textContent = fmtInt.format(s.events ?? 0);
    $("ops-sessions").textContent = fmtInt.format(s.sessions ?? 0);
    $("ops-pushes").textContent = fmtInt.format(s.pushes ?? 0);
    $("ops-p50").textContent = fmtMs(s.latency_ms?.p50);
    $("ops-p99").textContent = fmtMs(s.latency_ms?.p99);
    showReplay(s);
    const recall = s.recall;
    $("ops-recall-item").hidden = !recall;
    for (const type of recall ? TYPES : []) {
      const value = recall[type];
      $(`ops-recall-${type}`).textContent = typeof value === "number" ? value.toFixed(3) : "–";
    }
    showModels(s.models);
    charts?.add(s);
  } catch (error) {
    $("ops-rate").textContent = "–"; // the server is away; the next poll will tell
  } finally {
    statsInFlight = false;
  }
}

export function setUpOps() {
  // Charts open by default on a wide screen; on a phone they would fill the first screen.
  const key = "liverec.charts";
  const stored = localStorage.getItem(key);
  const toggle = $("ops-toggle");
  const show = (open) => {
    $("ops-charts").hidden = !open;
    $("ops").dataset.open = String(open);
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Hide charts" : "Show charts";
    if (open) charts?.refresh();
  };
  show(stored === null ? !phone.matches : stored === "open");
  toggle.addEventListener("click", () => {
    const open = $("ops-charts").hidden;
    localStorage.setItem(key, open ? "open" : "closed");
    show(open);
  });
  charts = new OpsCharts({
    rate: $("chart-rate"), latency: $("chart-latency"), recall: $("chart-recall"),
  }, $("charts-note"));
  charts.start().then(() => { if (!$("ops-charts").hidden) charts.refresh(); });
}
