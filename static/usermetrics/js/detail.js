/* detail.js — the detail page: one user's fields, state, lifecycle line, sources and per-source
 * records from the feed; its history charts, rates and flags from the history API.
 */
import { available as chartsAvailable, mount } from "./charts.js";
import { userCharts } from "./chartseries.js";
import { applyCost } from "./cost.js";
import { byId, setValue } from "./dom.js";
import { applyExtras } from "./figures.js";
import { ago, coverageWords, isActive, latency, localExact, parseTime, rateWords } from "./format.js";
import { NUMERIC } from "./rows.js";

// The charts' history (and with it the rates and flags) is fetched again this often.
const HISTORY_RELOAD_MS = 60000;

// After each history fetch: the window's rates, the flags, the export links and the URL.
function applyHistory(doc, windowName) {
  const words = rateWords(doc.stats || {});
  Array.prototype.forEach.call(document.querySelectorAll("[data-rate]"), function (node) {
    node.textContent = words[node.dataset.rate];
  });
  byId("um-rate-window").textContent = coverageWords(windowName, doc.stats);
  byId("um-rate-requests").textContent = String((doc.stats || {}).requests || 0);
  ["um-export-csv", "um-export-json"].forEach(function (id) {
    const link = byId(id);
    const url = new URL(link.href);
    url.searchParams.set("window", windowName);
    link.href = url.pathname + url.search;
  });
  const items = (doc.flags || []).map(function (flag) {
    const li = document.createElement("li");
    const badge = document.createElement("span");
    badge.className = "um-flag";
    badge.dataset.flag = flag.name;
    badge.textContent = flag.label;
    const detail = document.createElement("span");
    detail.className = "um-flag-detail";
    detail.textContent = flag.detail;
    li.append(badge, " ", detail);
    return li;
  });
  if (!items.length) {
    const none = document.createElement("li");
    none.className = "um-flag-none";
    none.textContent = doc.ended ? "An ended user has no flags." : "No flag is raised.";
    items.push(none);
  }
  const list = byId("um-flags");
  list.replaceChildren.apply(list, items);
  const here = new URL(window.location.href);
  if (here.searchParams.get("window") !== windowName) {
    here.searchParams.set("window", windowName);
    window.history.replaceState(null, "", here.pathname + here.search);
  }
}

function applyParts(parts) {
  byId("um-parts-module").hidden = !parts.length;
  const rows = parts.map(function (part) {
    const r = part.record;
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = part.source;
    tr.appendChild(th);
    const last = parseTime(r.session.last_activity);
    [
      [isActive(r) ? "active" : "idle", false],
      [String(r.requests.total_requests), true],
      [String(r.requests.active_requests), true],
      [latency(r.requests.avg_latency_ms), true],
      [String(r.requests.error_count), true],
      [String(r.memory.exit_stack_size), true],
      [localExact(last), false],
    ].forEach(function (cell) {
      const td = document.createElement("td");
      td.textContent = cell[0];
      if (cell[1]) td.className = "um-num";
      tr.appendChild(td);
    });
    return tr;
  });
  const body = byId("um-parts");
  body.replaceChildren.apply(body, rows);
}

/** Start the detail page of `config` (its um-config) on `feed`; returns the page for feed.start(). */
export function startDetail(config, feed) {
  let charts = null;

  const box = byId("um-charts");
  if (box && config.history_url && chartsAvailable()) {
    charts = mount(box, {
      historyUrl: config.history_url,
      window: config.window,
      onLoad: applyHistory,
      charts: userCharts(config.currency),
    });
    window.setInterval(function () {
      // Without a live feed the server is likely away: wait for the next reload, log no failure.
      if (!feed.paused() && !document.hidden && feed.live()) charts.reload();
    }, HISTORY_RELOAD_MS);
  }

  function applyDetail(frame) {
    const user = frame.users[0];
    // An empty list means gone, unless the user was only too big for a frame (view.clamped).
    if (!user && frame.view && frame.view.clamped) return;
    const gone = !user;
    byId("um-gone").hidden = !gone;
    document.body.classList.toggle("um-user-gone", gone);
    if (gone) {
      if (config.ended) return; // the page already shows it as ended, with its last values
      byId("um-state").dataset.state = "gone";
      byId("um-state").textContent = "gone";
      return;
    }
    if (charts) charts.appendLive(user, frame.timestamp);
    const stale = frame.stale || [];
    byId("um-stale").hidden = !(frame.origins || []).some(function (name) { return stale.indexOf(name) >= 0; });
    const nowMs = feed.serverNow();
    Array.prototype.forEach.call(document.querySelectorAll(".um-fields td[data-field]"), function (td) {
      const field = td.dataset.field;
      const section = ["created_at", "last_activity", "ref_count", "is_active"].indexOf(field) >= 0
        ? "session"
        : NUMERIC[field] ? NUMERIC[field][0] : "requests";
      const value = user[section][field];
      if (field === "created_at" || field === "last_activity") {
        const ms = parseTime(value);
        td.dataset.time = value;
        setValue(td.querySelector(".um-rel"), value, ago(ms, nowMs), true);
        td.querySelector(".um-exact").textContent = localExact(ms);
      } else if (field === "is_active") {
        setValue(td, value, value ? "yes" : "no", true);
      } else if (field === "avg_latency_ms") {
        setValue(td, value, latency(value), true);
      } else {
        setValue(td, value, String(value), true);
      }
    });
    const state = isActive(user) ? "active" : "idle";
    byId("um-state").dataset.state = state;
    byId("um-state").textContent = state;
    if (frame.lifecycle) byId("um-lifecycle").textContent = frame.lifecycle;
    const origins = (frame.origins || []).map(function (name) {
      const li = document.createElement("li");
      li.textContent = name;
      return li;
    });
    const list = byId("um-origins");
    list.replaceChildren.apply(list, origins);
    applyParts(frame.parts || []);
    applyExtras(frame.extras || null);
    applyCost(frame.extras || null);
  }

  return {
    query: function () { return "?"; },
    apply: applyDetail,
    // The lifecycle line is the server's words, new with every frame; nothing moves in between.
    tick: function () {},
  };
}
