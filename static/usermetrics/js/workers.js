/* workers.js — the sources page's table of a companion stream's NAT workers, rebuilt from each
 * /api/sources document (a source's `workers`, usermetrics.workers.Workers.summary); the same
 * cells and words as the server's (templates/usermetrics/sources.html, views/sources.py).
 */
import { ago, localExact, parseTime, skippedWords, workerStateWords } from "./format.js";

function cell(tag, text, numeric) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (numeric) node.className = "um-num";
  return node;
}

function workerRow(w, nowMs) {
  const tr = document.createElement("tr");
  tr.dataset.worker = w.label;
  const name = cell("th", w.label, false);
  name.scope = "row";
  name.className = "um-worker";
  const startedMs = parseTime(w.started_at);
  const started = cell("td", ago(startedMs, nowMs), false);
  started.dataset.time = w.started_at;
  started.title = localExact(startedMs);
  // As of the last refresh (the producer's clock), as the server writes it.
  const silent = w.silent_s === null || w.silent_s === undefined ? "" : ago(0, w.silent_s * 1000);
  const state = document.createElement("td");
  const badge = cell("span", workerStateWords(w.state), false);
  badge.className = "um-badge";
  badge.dataset.state = w.state;
  state.appendChild(badge);
  tr.append(
    name, cell("td", w.nat_version, false), cell("td", w.config, false), started, cell("td", silent, false), state,
    cell("td", String(w.users), true), cell("td", String(w.reports), true), cell("td", String(w.dropped), true),
    cell("td", String(w.gaps), true),
  );
  return tr;
}

/** Rebuild the workers table of `source` (an /api/sources entry), if the page shows one for it. */
export function applyWorkers(source, nowMs) {
  if (!source.workers) return;
  const holder = document.querySelector('tr[data-workers-of="' + CSS.escape(source.name) + '"]');
  if (!holder) return;
  const body = holder.querySelector("[data-worker-rows]");
  const rows = source.workers.map(function (w) { return workerRow(w, nowMs); });
  if (!rows.length) {
    const none = document.createElement("tr");
    const td = cell("td", "No worker has reported yet.", false);
    td.colSpan = 10;
    none.appendChild(td);
    rows.push(none);
  }
  body.replaceChildren.apply(body, rows);
  holder.querySelector("[data-skipped]").textContent = skippedWords(source.skipped);
}

