/* sources.js — the sources page: each source's state and users from every feed frame, and its
 * fetch time, body size and up/stale/down history from /api/sources (fetched again every few
 * seconds while the page is live and not paused).
 */
import { available as chartsAvailable, sparkline } from "./charts.js";
import { setValue } from "./dom.js";
import { ago, bytesWords, latencyFit, localExact, parseTime, shareWords } from "./format.js";
import { applyWorkers } from "./workers.js";

const DOC_REFRESH_MS = 5000;
const STATES = ["ok", "stale", "down"];

function cells(tr) {
  const out = {};
  Array.prototype.forEach.call(tr.children, function (cell) { out[cell.dataset.field] = cell; });
  return out;
}

// The state bar: one segment per run of a state, as wide as its share of the window.
function drawTimeline(node, history, windowStartMs, nowMs) {
  const points = history.points || [];
  const segments = [];
  const span = Math.max(1, nowMs - windowStartMs);
  points.forEach(function (p, i) {
    const from = Math.max(windowStartMs, p.t * 1000);
    const to = i + 1 < points.length ? points[i + 1].t * 1000 : nowMs;
    const last = segments[segments.length - 1];
    if (last && last.state === p.state) last.to = to;
    else segments.push({ state: p.state, from: from, to: to });
  });
  const nodes = segments.map(function (seg) {
    const span_ = document.createElement("span");
    span_.dataset.state = seg.state;
    span_.style.left = ((seg.from - windowStartMs) / span) * 100 + "%";
    span_.style.width = Math.max(0.3, ((seg.to - seg.from) / span) * 100) + "%";
    span_.title = seg.state + " from " + localExact(seg.from);
    return span_;
  });
  node.replaceChildren.apply(node, nodes);
}

/** Start the sources page of `config` (its um-config) on `feed`; returns the page for feed.start(). */
export function startSources(config, feed) {
  let lastFetch = 0;
  const windowSeconds = { "15m": 900, "1h": 3600, "24h": 86400, "7d": 604800 }[config.window] || 3600;

  function row(name) {
    return document.querySelector('#um-source-rows tr[data-source="' + CSS.escape(name) + '"]');
  }

  function applyHealth(s, nowMs) {
    const tr = row(s.name);
    if (!tr) return null;
    const c = cells(tr);
    const badge = c.state.querySelector(".um-badge");
    badge.dataset.state = s.state;
    setValue(badge, s.state, s.state, true);
    setValue(c.users, s.users, String(s.users), true);
    if (s.last_success) {
      const ms = parseTime(s.last_success);
      c.last_success.dataset.time = s.last_success;
      c.last_success.textContent = ago(ms, nowMs);
      c.last_success.title = localExact(ms);
    }
    const error = c.last_error.querySelector("[data-error]");
    const text = s.last_error || "–";
    if (error.textContent !== text) error.textContent = text;
    let when = c.last_error.querySelector(".um-error-ago");
    if (s.last_error_at) {
      if (!when) {
        when = document.createElement("span");
        when.className = "um-error-ago";
        c.last_error.append(" ", when);
      }
      const ms = parseTime(s.last_error_at);
      when.dataset.time = s.last_error_at; // main.js keeps "N s ago" moving
      when.textContent = ago(ms, nowMs);
      when.title = localExact(ms);
    }
    return c;
  }

  function applyDoc(doc) {
    const nowMs = feed.serverNow();
    doc.sources.forEach(function (s) {
      applyWorkers(s, nowMs);
      const c = applyHealth(s, nowMs);
      if (!c) return;
      c.duration.textContent = s.last_duration_ms === null ? "–" : latencyFit(s.last_duration_ms);
      c.body.textContent = s.last_body_bytes === null || s.last_body_bytes === undefined ? "–" : bytesWords(s.last_body_bytes);
      if (!c.timeline) return;
      drawTimeline(c.timeline.querySelector("[data-timeline]"), s.history, nowMs - windowSeconds * 1000, nowMs);
      STATES.forEach(function (state) {
        const share = c.timeline.querySelector('[data-share="' + state + '"]');
        if (share) share.textContent = shareWords(s.history.shares[state] || 0);
      });
      const spark = c.durations.querySelector("[data-duration-spark]");
      const durations = s.history.points.map(function (p) { return p.duration_ms || 0; });
      if (chartsAvailable() && durations.length > 1) {
        sparkline(spark, durations);
        spark.title = "Fetch time of the recorded refreshes, last " + config.window;
      }
    });
  }

  function fetchDoc() {
    lastFetch = Date.now();
    fetch(config.sources_url + "?window=" + encodeURIComponent(config.window), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (doc) { if (doc) applyDoc(doc); })
      .catch(function () { /* the next frame tries again */ });
  }

  if (config.doc) applyDoc(config.doc);

  return {
    // The smallest list view: the frame's sources are what this page needs from the feed.
    query: function () { return "?page_size=1"; },
    apply: function (frame) {
      const nowMs = feed.serverNow();
      (frame.sources || []).forEach(function (s) { applyHealth(s, nowMs); });
      if (Date.now() - lastFetch >= DOC_REFRESH_MS && !document.hidden) fetchDoc();
    },
    tick: function () {},
  };
}
