/* list.js — the list page: applies the feed's frames to the table and its panels, and turns its
 * links and search form into re-subscriptions of the feed instead of page loads.
 */
import { available as chartsAvailable, mount } from "./charts.js";
import { OVERVIEW_CHARTS, spendCharts, summarySample } from "./chartseries.js";
import { startColumns } from "./columns.js";
import { byId } from "./dom.js";
import {
  applyControls, applyCount, applyEmpty, applyHeaders, applyLinks, applyPaginator, applySources, applySummary,
} from "./panels.js";
import { createRates } from "./rates.js";
import { applyRows } from "./rows.js";
import { DEFAULT_VIEW, frameMatches, linkView, pageLoad, queryOf, viewFromMeta, viewKey } from "./view.js";

// The history is fetched again this often (the live frames add their points in between).
const OVERVIEW_RELOAD_MS = 60000;

// The overview charts over everyone, in the detail page's chart style, with live points.
function startOverview(config, feed) {
  const box = byId("um-overview");
  if (!box || !config.overview_url || !chartsAvailable()) return null;
  const charts = mount(box, {
    historyUrl: config.overview_url,
    window: "1h",
    charts: OVERVIEW_CHARTS,
    sample: summarySample,
    height: 130,
    columns: 5,
    legend: false, // five small charts: their titles say what they show
  });
  window.setInterval(function () {
    // Without a live feed the server is likely away: wait for the next reload, log no failure.
    if (!feed.paused() && !document.hidden && feed.live()) charts.reload();
  }, OVERVIEW_RELOAD_MS);
  return charts;
}

// The overview's cost per hour and tokens per minute (the overview's own series: no live points).
function startSpend(config, feed) {
  const box = byId("um-spend-chart");
  if (!box || !config.overview_url || !chartsAvailable()) return;
  const charts = mount(box, {
    historyUrl: config.overview_url,
    window: "24h",
    charts: spendCharts(config.currency),
    height: 130,
    columns: 2,
    legend: false,
    stats: false, // the overview's request stats are said above
  });
  window.setInterval(function () {
    if (!feed.paused() && !document.hidden && feed.live()) charts.reload();
  }, OVERVIEW_RELOAD_MS);
}

/** Start the list page of `config` (its um-config) on `feed`; returns the page for feed.start(). */
export function startList(config, feed) {
  let view = viewFromMeta(config.view);
  let renderedViewKey = viewKey(view);
  const rates = createRates(config, feed, function () { return view; });
  startColumns(config);
  const overview = startOverview(config, feed);
  startSpend(config, feed);

  function applyExports() {
    // The exports take the whole filtered list: the view without its paging.
    const query = queryOf(Object.assign({}, view, { page: 1, page_size: DEFAULT_VIEW.page_size }));
    ["um-export-csv", "um-export-json"].forEach(function (id) {
      const link = byId(id);
      if (link) link.href = link.pathname + (query === "?" ? "" : query);
    });
  }

  function applyList(frame) {
    const meta = frame.view;
    if (!frameMatches(meta, view)) return; // a frame of the view we just left
    const key = viewKey(view);
    const sameView = key === renderedViewKey;
    renderedViewKey = key;
    const nowMs = feed.serverNow();
    applySummary(frame.summary, true);
    if (overview) overview.appendLive(frame.summary, frame.timestamp);
    applySources(frame.sources, feed.serverNow());
    // The ended users, and the order by the window's tokens or cost, are not the feed's: their
    // rows stay as the server rendered them (rates.js keeps their window's figures current).
    if (pageLoad(meta)) return;
    applyHeaders(meta);
    applyLinks(view);
    applyControls(meta, view);
    applyPaginator(meta, view);
    applyCount(meta, frame);
    applyEmpty(meta, frame);
    applyRows(byId("um-rows"), frame, nowMs, sameView, config);
    rates.rowsChanged();
  }

  function subscribe(next) {
    if (pageLoad(next) || pageLoad(view)) {
      window.location.assign(window.location.pathname + queryOf(next)); // served by the page, not the feed
      return;
    }
    view = next;
    applyExports();
    applyLinks(view); // now, not at the view's frame: a link followed before it keeps this change
    const query = queryOf(view);
    window.history.replaceState(null, "", query === "?" ? window.location.pathname : query);
    if (feed.paused()) feed.setPaused(false);
    feed.send(Object.assign({ type: "subscribe" }, view));
  }

  // Links keep working without JavaScript; with it they re-subscribe instead of reloading.
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("#um-table thead a, #um-paginator a, .um-filters a");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    // Followed by the rule its href is written with, from the view the page is on now: nothing
    // hangs on the href being up to date when the click comes.
    const next = linkView(view, link.dataset);
    if (!next) return;
    event.preventDefault();
    subscribe(next);
  });
  const form = byId("um-search");
  function fromForm() {
    return {
      page: 1,
      // A page size the menu does not offer (?page_size=5 from a link) leaves the select on none.
      page_size: parseInt(byId("um-page-size").value, 10) || view.page_size,
      sort: view.sort,
      q: byId("um-q").value.trim(),
      state: view.state, // the state links set it; the search keeps it
      window: view.window,
    };
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    subscribe(fromForm());
  });
  let typing = null;
  byId("um-q").addEventListener("input", function () {
    window.clearTimeout(typing);
    typing = window.setTimeout(function () { subscribe(fromForm()); }, 300);
  });
  byId("um-page-size").addEventListener("change", function () { subscribe(fromForm()); });
  rates.setup();

  return {
    query: function () { return queryOf(view); },
    apply: applyList,
    tick: function () {},
  };
}
