/* format.js — every word and number the pages and the charts write, as text (no DOM).
 *
 * Most rules mirror the server's (usermetrics/humanize.py, identities.py, converters.py and the
 * templates), so that a value rendered by the server and the same value rendered here read alike.
 * Money, tokens and cost are money.js's.
 */

export function durationWords(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) {
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return m ? h + " h " + m + " min" : h + " h";
  }
  const d = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  return hours ? d + " d " + hours + " h" : d + " d";
}

export function parseTime(iso) {
  // Browsers differ on more than three fractional digits: keep milliseconds only.
  return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
}

export function ago(ms, nowMs) {
  const seconds = (nowMs - ms) / 1000;
  if (seconds < 1) return "just now";
  return durationWords(seconds).split(" ").slice(0, 2).join(" ") + " ago";
}

function pad(n, width) {
  let s = String(n);
  while (s.length < width) s = "0" + s;
  return s;
}

export function utcExact(ms) {
  const d = new Date(ms);
  return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + " " +
    pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) + "." +
    pad(d.getUTCMilliseconds(), 3) + " UTC";
}

// ---- the one rule for times: the browser's time zone, with its offset shown --------------------
// The server writes UTC (usermetrics.templatetags.usermetrics.utc) into pages without the script;
// with it, every exact time, title and chart axis reads in the browser's zone, offset included.

function offsetWords(d) {
  const minutes = -d.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return "UTC" + sign + pad(Math.floor(abs / 60), 2) + ":" + pad(abs % 60, 2);
}

// "2026-11-25 16:00:00.123 UTC+01:00"
export function localExact(ms) {
  const d = new Date(ms);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1, 2) + "-" + pad(d.getDate(), 2) + " " +
    pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2) + "." +
    pad(d.getMilliseconds(), 3) + " " + offsetWords(d);
}

// "16:00 UTC+01:00"
export function localClock(ms) {
  const d = new Date(ms);
  return pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + " " + offsetWords(d);
}

// As usermetrics.selection.window_length: "5m", "1h", "24h", "7d" in seconds.
export function windowSeconds(name) {
  const m = /^(\d+)([mhd])$/.exec(String(name));
  return m ? parseInt(m[1], 10) * { m: 60, h: 3600, d: 86400 }[m[2]] : 0;
}

// As usermetrics.humanize.coverage_words: what a window's rates cover, in the browser's zone.
// `span` is a window stats document's {seconds, since}.
export function coverageWords(windowName, span) {
  if (!span || !span.since || span.seconds >= windowSeconds(windowName) - 1) return "the last " + windowName;
  return "the last " + durationWords(span.seconds) + "; history starts " + localClock(parseTime(span.since));
}

// The short form in the list's column group: "1h", or "3 min" while the history is younger.
export function coverageShort(windowName, span) {
  if (!span || !span.since || span.seconds >= windowSeconds(windowName) - 1) return windowName;
  return durationWords(span.seconds);
}

// ---- numbers ----------------------------------------------------------------------------------

// As usermetrics.humanize.big_number: digit groups below a million ("12,345"), then one
// decimal and a unit ("1.2M", "3B", "4.5T"), then scientific ("9.0e+15"). The title has the exact value.
const UNITS = [[1e12, "T"], [1e9, "B"], [1e6, "M"]];
export function bigNumber(value) {
  const n = Number(value);
  if (!isFinite(n)) return String(value);
  const abs = Math.abs(n);
  if (abs >= 1e15) return n.toExponential(1);
  for (let i = 0; i < UNITS.length; i++) {
    if (abs >= UNITS[i][0]) {
      let v = Math.round((abs / UNITS[i][0]) * 10) / 10;
      if (v >= 1000 && i > 0) { v = Math.round((abs / UNITS[i - 1][0]) * 10) / 10; i -= 1; }
      return (n < 0 ? "-" : "") + String(v) + UNITS[i][1];
    }
  }
  const r = Math.round(n * 100) / 100;
  const parts = String(Math.abs(r)).split(".");
  return (r < 0 ? "-" : "") + parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (parts[1] ? "." + parts[1] : "");
}

// As usermetrics.humanize.latency_fit: "206.99 ms", "1.61 s", "3 h 5 min", "1.0e+297 s".
export function latencyFit(ms) {
  const n = Number(ms);
  if (!isFinite(n)) return String(ms);
  if (Math.abs(n) < 1000) return number(n) + " ms";
  const s = n / 1000;
  if (Math.abs(s) < 60) return number(s) + " s";
  if (Math.abs(s) < 1e9) return durationWords(s);
  return s.toExponential(1) + " s";
}

// As usermetrics.humanize.bytes_words: "812 B", "3.6 KiB", "3.7 MiB".
export function bytesWords(size) {
  if (size < 1024) return size + " B";
  let value = size / 1024;
  const units = ["KiB", "MiB", "GiB"];
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return number(Math.round(value * 10) / 10) + " " + units[i];
}

// "98.5%": a share of the window (the sources page's timeline).
export function shareWords(share) {
  return (Math.round(share * 1000) / 10).toFixed(1) + "%";
}

export function number(value) {
  // As usermetrics.humanize.number: at most two decimals, no trailing zeros.
  return String(Math.round(value * 100) / 100);
}

function none(v) {
  return v === null || v === undefined;
}

export function rateWords(stats) {
  return {
    requests_per_min: number(stats.requests_per_min || 0),
    error_rate: none(stats.error_rate) ? "–" : number(stats.error_rate * 100) + " %",
    latency_ms: none(stats.latency_ms) ? "–" : number(stats.latency_ms) + " ms",
    p95_ms: percentileWords(stats.p95_ms),
  };
}

// What a figure without a value reads (usermetrics.humanize.NO_VALUE): an en dash.
export const NO_VALUE = "\u2013";

// As usermetrics.humanize.percentile_words: a latency percentile, or NO_VALUE without one (no
// NAT companion reports the user, or none of its requests was counted yet).
export function percentileWords(ms) {
  return none(ms) ? NO_VALUE : latencyFit(ms);
}

// As usermetrics.humanize.figure_count: a companion's count ("3"), NO_VALUE without a companion.
export function figureCount(value) {
  return none(value) ? NO_VALUE : String(value);
}

// As usermetrics.humanize.percentiles_title: "p50 12 ms · p95 140 ms · p99 1.2 s".
export function percentilesTitle(figures) {
  return [50, 95, 99].map(function (q) {
    return "p" + q + " " + percentileWords(figures["p" + q + "_ms"]);
  }).join(" · ");
}

// As usermetrics.humanize.bucket_words: "≤ 15 ms", "> 5 min" for the last bucket.
export function bucketWords(bucket) {
  return bucket.le_ms === null ? "> " + latencyFit(bucket.gt_ms) : "\u2264 " + latencyFit(bucket.le_ms);
}

// As usermetrics.humanize.concurrency_words: "8", or "unlimited" for 0.
export function concurrencyWords(size) {
  return size ? String(size) : "unlimited";
}

// As usermetrics.humanize.workers_words: "on 1 worker", "on 3 workers".
export function workersWords(count) {
  return "on " + count + " worker" + (count === 1 ? "" : "s");
}

// As usermetrics.humanize.worker_state_words: a NAT worker "live" (reporting) or "ended".
export function workerStateWords(state) {
  return state === "ok" ? "live" : state;
}

// As usermetrics.humanize.skipped_words: "garbage: 2, too large: 1", or "none".
export function skippedWords(byKind) {
  const kinds = Object.keys(byKind || {}).sort();
  return kinds.length ? kinds.map(function (k) { return k + ": " + byKind[k]; }).join(", ") : "none";
}

export function latency(value) {
  // Python prints floats with at least one decimal; match it so values do not flicker.
  return (Number.isInteger(value) ? value.toFixed(1) : String(value)) + " ms";
}

// Whether a user has a request in flight: usermetrics.snapshot.is_active, NAT's own rule
// (ref_count > 0), so a source whose is_active disagrees reads the same here as on the server.
// The lifecycle in words comes with each frame ("lifecycle", from usermetrics.humanize).
export function isActive(user) {
  return user.session.ref_count > 0;
}

export function segment(userId) {
  // usermetrics.converters.user_id_to_segment, then percent-encoding, as reverse() does.
  if (userId === "") return "~"; // the empty id's reserved segment
  let s = userId.replace(/~/g, "~7E").replace(/\//g, "~2F");
  if (s.charAt(0) === ".") s = "~2E" + s.slice(1);
  return encodeURIComponent(s);
}

// `prefix` is the page config's detail_prefix (the detail URL without its user id segment).
export function detailUrl(prefix, userId) {
  return prefix + segment(userId) + "/";
}

export function userDisplay(userId, label) {
  // As usermetrics.identities.user_display: "label (user id)" for a registered user.
  return label ? label + " (" + userId + ")" : userId;
}

// ---- sentences of the list page (the same words as the templates and views.py) ----------------

// One banner line for a source that is not ok, after its bold name (base.html).
export function bannerWords(source, nowMs) {
  let text = " is " + source.state + (source.last_error ? ": " + source.last_error : "") + ". ";
  if (source.last_success) {
    text += "Last answered " + ago(parseTime(source.last_success), nowMs);
    text += source.users ? "; its " + source.users + " users show their last known values." : ".";
  } else {
    text += "It has not answered since the dashboard started.";
  }
  return text;
}

// The line above the table (user_list.html): which users of how many the page shows.
export function countWords(meta, shown, total) {
  if (!meta.matched) return "0 users";
  const first = (meta.page - 1) * meta.page_size + 1;
  let text = "Users " + first + "–" + (first + shown - 1) + " of " + meta.matched;
  if (meta.matched !== total) text += " matching (of " + total + ")";
  return text;
}

// Why a live frame has no rows (views._empty_reason), or null when it has some.
export function emptyReason(frame) {
  if (frame.users.length) return null;
  const sources = frame.sources || [];
  if (!sources.length) return "No sources are configured, so there are no users to show.";
  if (!frame.total_active_users) {
    const down = sources.every(function (s) { return s.state !== "ok"; });
    return down
      ? "Every source is down: there is no data to show. See the sources above for their errors."
      : "No users yet: no source reports a per-user workflow.";
  }
  return "No user matches this search and filter.";
}

export function pagesWords(page, pages) {
  return "page " + page + " of " + pages;
}

export function clampedWords(pageSize) {
  return "showing " + pageSize + " a page to keep live frames small";
}

// ---- the charts -----------------------------------------------------------------------------

export function sparklineTitle(windowName) {
  return "Requests per minute, last " + windowName;
}

// The line above the charts: what the window's numbers cover (coverageWords), then its
// requests, rate, error rate and latency.
export function chartStatusWords(windowName, stats) {
  return "Over " + coverageWords(windowName, stats) + ": " + (stats.requests || 0) + " requests, " +
    number(stats.requests_per_min || 0) + "/min, error rate " +
    (none(stats.error_rate) ? "–" : number(stats.error_rate * 100) + " %") +
    ", latency " + (none(stats.latency_ms) ? "–" : latencyFit(stats.latency_ms));
}
