/* figures.js — the detail page's Latency and Queue panels and its workers line, from a user
 * frame's `extras` (what NAT companions say of the user; null for other sources' users). The
 * words are format.js's, the same as the server's (usermetrics/humanize.py).
 */
import { byId, setValue } from "./dom.js";
import {
  NO_VALUE, bucketWords, concurrencyWords, latencyFit, percentileWords, shareWords, workersWords,
} from "./format.js";

function bucketRow(bucket, top) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = bucketWords(bucket);
  const bar = document.createElement("td");
  bar.className = "um-bar";
  const meter = document.createElement("meter");
  meter.min = 0;
  meter.max = top;
  meter.value = bucket.count;
  bar.appendChild(meter);
  const count = document.createElement("td");
  count.className = "um-num";
  count.textContent = String(bucket.count);
  tr.append(th, bar, count);
  return tr;
}

function applyWorkers(labels) {
  byId("um-workers").hidden = !labels.length;
  if (!labels.length) return;
  byId("um-workers-words").textContent = workersWords(labels.length);
  const items = [];
  labels.forEach(function (label, i) {
    if (i) items.push(", ");
    const span = document.createElement("span");
    span.className = "um-worker";
    span.textContent = label;
    items.push(span);
  });
  const holder = byId("um-worker-labels");
  holder.replaceChildren.apply(holder, items);
}

/** Show `extras` (a user frame's) in the panels, or hide them when there are none. */
export function applyExtras(extras) {
  const latencyModule = byId("um-latency-module");
  if (!latencyModule) return;
  latencyModule.hidden = !extras;
  byId("um-queue-module").hidden = !extras;
  applyWorkers(extras ? extras.workers : []);
  if (!extras) return;
  const latency = extras.latency;
  const queue = extras.queue;
  const texts = {
    p50_ms: [latency.p50_ms, percentileWords(latency.p50_ms)],
    p95_ms: [latency.p95_ms, percentileWords(latency.p95_ms)],
    p99_ms: [latency.p99_ms, percentileWords(latency.p99_ms)],
    requests: [latency.requests, String(latency.requests)],
    queued: [queue.queued, String(queue.queued)],
    max_concurrency: [queue.max_concurrency, concurrencyWords(queue.max_concurrency)],
    wait_ms: [queue.wait_ms, latencyFit(queue.wait_ms)],
    run_ms: [queue.run_ms, latencyFit(queue.run_ms)],
    wait_share: [queue.wait_share, queue.wait_share === null ? NO_VALUE : shareWords(queue.wait_share)],
  };
  Array.prototype.forEach.call(document.querySelectorAll("[data-figure]"), function (td) {
    const pair = texts[td.dataset.figure];
    if (pair) setValue(td, pair[0], pair[1], true);
  });
  document.querySelector('[data-figure="queued"]').classList.toggle("um-has-queue", queue.queued > 0);
  const top = latency.buckets.reduce(function (m, b) { return Math.max(m, b.count); }, 0);
  const body = byId("um-buckets");
  body.replaceChildren.apply(body, latency.buckets.map(function (b) { return bucketRow(b, top); }));
}
