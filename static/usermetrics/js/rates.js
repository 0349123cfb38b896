/* rates.js — the list rows' window: rates, flags and sparklines, fetched (not carried by the feed)
 * every 30 s while the feed is live, and soon after new rows arrive.
 */
import { sparkline, available as chartsAvailable } from "./charts.js";
import { byId } from "./dom.js";
import { coverageShort, coverageWords, rateWords, sparklineTitle } from "./format.js";
import { spendWords } from "./money.js";
import { rowIds, WINDOW_FIELDS } from "./rows.js";

const WINDOW_REFRESH_MS = 30000;

/**
 * The window of the rows of one list page: `config` is its um-config, `feed` its connection,
 * `currentView()` the view it shows. Returns {setup(), rowsChanged()}.
 */
export function createRates(config, feed, currentView) {
  let windowTimer = null;
  let windowIds = "";

  function drawSparkline(holder, values) {
    if (!chartsAvailable() || !values) return;
    sparkline(holder, values);
    holder.title = sparklineTitle(currentView().window);
  }

  function applyFlags(cell, flags) {
    const badges = flags.map(function (flag) {
      const badge = document.createElement("span");
      badge.className = "um-flag";
      badge.dataset.flag = flag.name;
      badge.title = flag.detail;
      badge.textContent = flag.label;
      return badge;
    });
    cell.replaceChildren.apply(cell, badges);
  }

  // What the rates cover grows with the history until it spans the whole window (and its
  // clock reads in the browser's zone, as every time on the page).
  function applyCoverage(windowName, span) {
    if (!span || !byId("um-window-head")) return;
    byId("um-window-head").textContent = coverageShort(windowName, span);
    byId("um-coverage-words").textContent = coverageWords(windowName, span);
  }

  function applyWindow(doc) {
    applyCoverage(doc.window, doc.span);
    Array.prototype.forEach.call(byId("um-rows").rows, function (tr) {
      const entry = doc.users[tr.dataset.userId];
      if (!entry) return;
      const words = Object.assign(rateWords(entry.stats), spendWords(entry.tokens, config.currency));
      WINDOW_FIELDS.forEach(function (field) {
        const td = tr.querySelector('[data-field="w_' + field + '"]');
        if (!td) return;
        if (td.textContent !== words[field]) td.textContent = words[field];
        const title = words[field + "_title"];
        if (title !== undefined && td.title !== title) td.title = title;
      });
      const flags = tr.querySelector("[data-row-flags]");
      if (flags && currentView().state !== "ended") applyFlags(flags, entry.flags);
      const holder = tr.querySelector("[data-sparkline-user]");
      if (holder) drawSparkline(holder, entry.sparkline);
    });
  }

  function refreshWindow() {
    window.clearTimeout(windowTimer);
    windowTimer = window.setTimeout(refreshWindow, WINDOW_REFRESH_MS);
    // Without a live feed the server is likely away: wait for the next refresh, log no failure.
    if (!config.window_url || feed.paused() || document.hidden || !feed.live()) return;
    const ids = rowIds();
    windowIds = ids.join("\u0000");
    if (!ids.length) return;
    const params = new URLSearchParams();
    params.set("window", currentView().window);
    ids.forEach(function (id) { params.append("user_id", id); });
    fetch(config.window_url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (doc) { if (doc) applyWindow(doc); })
      .catch(function () { /* the next refresh tries again */ });
  }

  return {
    // The sparklines the server sent with the page, then a refresh every WINDOW_REFRESH_MS.
    setup: function () {
      if (!config.window_url) return;
      applyCoverage(currentView().window, config.span);
      const node = byId("um-sparklines");
      const initial = node ? JSON.parse(node.textContent) : {};
      Array.prototype.forEach.call(document.querySelectorAll("[data-sparkline-user]"), function (holder) {
        drawSparkline(holder, initial[holder.dataset.sparklineUser]);
      });
      windowIds = rowIds().join("\u0000");
      windowTimer = window.setTimeout(refreshWindow, WINDOW_REFRESH_MS);
    },
    // New rows on the page (sort, paging, new users): fetch their window soon, once.
    rowsChanged: function () {
      if (!config.window_url) return;
      if (rowIds().join("\u0000") === windowIds) return;
      window.clearTimeout(windowTimer);
      windowTimer = window.setTimeout(refreshWindow, 1000);
    },
  };
}
