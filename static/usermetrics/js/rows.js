/* rows.js — the list table's rows: built and filled from a frame's users, kept in the frame's
 * order, flashed when they change, marked gone for a few frames when every source lost them.
 */
import { byId, flash, setValue } from "./dom.js";
import {
  ago, detailUrl, figureCount, isActive, latency, localExact, parseTime, percentilesTitle, percentileWords, userDisplay,
} from "./format.js";

export const COLUMNS = [
  "created_at", "last_activity", "ref_count", "is_active", "total_requests", "active_requests", "queued",
  "avg_latency_ms", "p95_ms", "error_count", "per_user_functions_count", "per_user_function_groups_count",
  "exit_stack_size",
];
// Where each counter sits in a PerUserResourceUsage: [section, field].
export const NUMERIC = {
  ref_count: ["session", "ref_count"],
  total_requests: ["requests", "total_requests"],
  active_requests: ["requests", "active_requests"],
  error_count: ["requests", "error_count"],
  per_user_functions_count: ["memory", "per_user_functions_count"],
  per_user_function_groups_count: ["memory", "per_user_function_groups_count"],
  exit_stack_size: ["memory", "exit_stack_size"],
};
// The NAT companions' columns, from the frame's `figures` (NO_VALUE for a user without a companion).
export const FIGURES = ["queued", "p95_ms"];
// The window's columns (fetched, not pushed: see rates.js); the tokens and cost from the history too.
export const WINDOW_FIELDS = ["requests_per_min", "error_rate", "latency_ms", "p95_ms", "tokens", "cost"];

// `withWindow`: the page shows the window's rates and activity (the history is on).
function buildRow(user, withWindow) {
  const tr = document.createElement("tr");
  tr.dataset.userId = user.user_id;
  const th = document.createElement("th");
  th.scope = "row";
  th.className = "um-col-user";
  th.dataset.field = "user_id";
  const a = document.createElement("a");
  th.appendChild(a);
  const flags = document.createElement("span");
  flags.className = "um-row-flags";
  flags.dataset.rowFlags = "";
  th.appendChild(flags);
  tr.appendChild(th);
  // The window's rates and activity come right after the user, as on the server-rendered page.
  if (withWindow) {
    WINDOW_FIELDS.forEach(function (field) {
      const td = document.createElement("td");
      td.dataset.field = "w_" + field;
      td.className = "um-num um-rate";
      td.textContent = "…";
      tr.appendChild(td);
    });
    const spark = document.createElement("td");
    spark.className = "um-col-spark";
    spark.dataset.field = "w_activity";
    const holder = document.createElement("span");
    holder.dataset.sparklineUser = user.user_id;
    spark.appendChild(holder);
    tr.appendChild(spark);
  }
  COLUMNS.forEach(function (field) {
    const td = document.createElement("td");
    td.dataset.field = field;
    if (NUMERIC[field] || FIGURES.indexOf(field) >= 0 || field === "avg_latency_ms") td.className = "um-num";
    if (field === "is_active") {
      const badge = document.createElement("span");
      badge.className = "um-badge";
      td.appendChild(badge);
    }
    tr.appendChild(td);
  });
  return tr;
}

function fillTime(td, iso, nowMs, animate) {
  const ms = parseTime(iso);
  setValue(td, iso, ago(ms, nowMs), animate);
  td.dataset.time = iso;
  td.title = localExact(ms);
}

// `figures`: the frame's figures of this user (p50/p95/p99 ms, queued), absent without a companion.
function fillFigures(cells, figures, animate) {
  const f = figures || {};
  setValue(cells.p95_ms, f.p95_ms, percentileWords(f.p95_ms), animate);
  cells.p95_ms.title = figures ? percentilesTitle(figures) : "";
  setValue(cells.queued, f.queued, figureCount(f.queued), animate);
  cells.queued.classList.toggle("um-has-queue", f.queued > 0);
}

function fillRow(tr, user, label, figures, nowMs, animate, detailPrefix) {
  const cells = {};
  Array.prototype.forEach.call(tr.children, function (cell) {
    cells[cell.dataset.field] = cell;
  });
  const link = cells.user_id.querySelector("a");
  const shown = userDisplay(user.user_id, label);
  if (link.textContent !== shown) {
    link.textContent = shown;
    link.title = shown; // the whole id, however long (the cell shows one line with an ellipsis)
  }
  link.href = detailUrl(detailPrefix, user.user_id);
  fillTime(cells.created_at, user.session.created_at, nowMs, animate);
  fillTime(cells.last_activity, user.session.last_activity, nowMs, animate);
  Object.keys(NUMERIC).forEach(function (field) {
    const path = NUMERIC[field];
    const value = user[path[0]][path[1]];
    setValue(cells[field], value, String(value), animate);
  });
  setValue(cells.avg_latency_ms, user.requests.avg_latency_ms, latency(user.requests.avg_latency_ms), animate);
  cells.error_count.classList.toggle("um-has-errors", user.requests.error_count > 0);
  fillFigures(cells, figures, animate);
  const state = isActive(user) ? "active" : "idle";
  const badge = cells.is_active.querySelector(".um-badge");
  badge.dataset.state = state;
  setValue(badge, state, state, animate);
  tr.classList.toggle("um-active", state === "active");
}

/**
 * Make `tbody` show the frame's users in its order. `sameView`: the frame is of the view already
 * shown (changes flash, lost users linger); `config` is the page's um-config.
 */
export function applyRows(tbody, frame, nowMs, sameView, config) {
  const existing = new Map();
  Array.prototype.forEach.call(tbody.rows, function (tr) {
    existing.set(tr.dataset.userId, tr);
  });
  const gone = new Set(frame.gone || []);
  const labels = frame.labels || {};
  const figures = frame.figures || {};
  const ordered = [];
  frame.users.forEach(function (user) {
    let tr = existing.get(user.user_id);
    if (tr) {
      existing.delete(user.user_id);
      tr.classList.remove("um-gone");
      delete tr.dataset.goneFrames;
      fillRow(tr, user, labels[user.user_id], figures[user.user_id], nowMs, sameView, config.detail_prefix);
    } else {
      tr = buildRow(user, !!config.window_url);
      fillRow(tr, user, labels[user.user_id], figures[user.user_id], nowMs, false, config.detail_prefix);
      if (sameView) flash(tr); // a user new to this page since the last frame
    }
    ordered.push(tr);
  });
  // Rows not in the frame: users that vanished from every source stay a few frames, marked
  // gone; users that only moved off this page (sort, filter) leave at once.
  existing.forEach(function (tr, userId) {
    const frames = parseInt(tr.dataset.goneFrames || "0", 10);
    if (sameView && (gone.has(userId) || frames > 0) && frames < 5) {
      tr.dataset.goneFrames = String(frames + 1);
      if (!tr.classList.contains("um-gone")) {
        tr.classList.add("um-gone");
        tr.title = "No source reports this user any more";
      }
      ordered.push(tr);
    } else {
      tr.remove();
    }
  });
  let cursor = tbody.firstElementChild;
  ordered.forEach(function (tr) {
    if (tr === cursor) cursor = cursor.nextElementSibling;
    else tbody.insertBefore(tr, cursor); // moves only rows out of place, so flashes keep running
  });
}

// The ids of the rows on the page, in order.
export function rowIds() {
  return Array.prototype.map.call(byId("um-rows").rows, function (tr) {
    return tr.dataset.userId;
  });
}
