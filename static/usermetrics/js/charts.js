/*
 * charts.js — the history charts (uPlot): the detail page's five, and the list page's overview.
 *
 * An ES module, no inline code, no innerHTML: CSP-safe. Its words and numbers come from
 * format.js. Needs uPlot's classic script (it defines the global `uPlot`) to run before it:
 *   <link rel="stylesheet" href="{% static 'usermetrics/vendor/uplot/uPlot.min.css' %}">
 *   <script src="{% static 'usermetrics/vendor/uplot/uPlot.iife.min.js' %}" defer></script>
 *   <script type="module" src="{% static 'usermetrics/js/main.js' %}"></script>
 *
 * Exports:
 *
 *   import { mount, sparkline, sparklines, available, WINDOWS } from "./charts.js";
 *   const charts = mount(element, {
 *     historyUrl: "/api/users/<segment>/history",   // reverse("usermetrics:api-user-history", args=[id])
 *     window: "1h",                                // 15m | 1h | 24h | 7d
 *     onLoad: function (doc, windowName) {},       // optional: after each history fetch
 *     charts: userCharts("USD"),                   // optional: which series (chartseries.js)
 *   });
 *   charts.appendLive(usage, timestamp);  // what `sample` reads (a PerUserResourceUsage; the overview:
 *                                         // a frame's summary), the frame's timestamp
 *   charts.setWindow("24h");              // also what the built-in window buttons call
 *   charts.destroy();
 *
 *   sparkline(element, values);                      // one row's small activity chart (sparklines.js)
 *   sparklines(container, sparklinesUrl, windowName) // every [data-sparkline-user] in container
 *   available()                                      // is uPlot on the page (the history is on)?
 *
 * Colours come from the Django admin's CSS variables (--body-fg, --hairline-color, --link-fg,
 * --error-fg ...), read again when the theme changes, so the charts follow light and dark mode.
 */
import { cssVar, el, fetchJson, onThemeChange, theme } from "./chartbase.js";
import { USER_CHARTS, userSample } from "./chartseries.js";
import { chartStatusWords, parseTime } from "./format.js";

export const WINDOWS = ["15m", "1h", "24h", "7d"];
export { sparkline, sparklines } from "./sparklines.js";

// An axis value that fits its 50 px: "300k", "1.2M" (a token count per minute runs to millions).
function axisValue(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return String(Math.round(v / 1e5) / 10) + "M";
  if (a >= 1e4) return String(Math.round(v / 1e3)) + "k";
  return String(Math.round(v * 1000) / 1000);
}

function chartOptions(title, unit, colourVar, width, height, legend) {
  const t = theme();
  const axis = { stroke: t.quiet, grid: { stroke: t.grid, width: 1 }, ticks: { stroke: t.border, width: 1 } };
  const values = function (u, splits) { return splits.map(axisValue); };
  return {
    title: title,
    width: width,
    height: height,
    cursor: { drag: { x: false, y: false } },
    legend: { show: legend },
    scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
    axes: [axis, Object.assign({}, axis, { label: unit, labelSize: 18, size: 50, values: values })],
    series: [
      {},
      {
        label: title,
        stroke: cssVar(colourVar, t.fg),
        width: 1.5,
        spanGaps: false,
        points: { show: false },
      },
    ],
  };
}

/**
 * Render the five history charts of one user into `element` and keep them appending live.
 * options: {historyUrl, window, onLoad}. Returns {setWindow, appendLive, reload, destroy}.
 */
export function mount(element, options) {
  const charts = options.charts || USER_CHARTS;
  const sample = options.sample || userSample;
  const height = options.height || 160;
  const columns = options.columns || 1;
  const state = {
    window: options.window || "1h",
    doc: null,
    plots: [],
    data: [],
    shown: [], // the index in `charts` of each plot drawn
    previous: null, // the last live usage, to turn counters into rates
    bucket: null, // the live bucket being filled
    stopTheme: null,
  };
  while (element.firstChild) element.removeChild(element.firstChild);
  element.classList.add("usermetrics-charts");
  if (columns > 1) element.classList.add("usermetrics-charts-row");

  const bar = el("div", "usermetrics-chart-windows");
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Chart window");
  const buttons = {};
  WINDOWS.forEach(function (name) {
    const button = el("button", "button", name);
    button.type = "button";
    button.addEventListener("click", function () { controller.setWindow(name); });
    buttons[name] = button;
    bar.appendChild(button);
  });
  const status = el("p", "usermetrics-chart-status help");
  const grid = el("div", "usermetrics-chart-grid");
  element.appendChild(bar);
  element.appendChild(status);
  element.appendChild(grid);

  function chartWidth() {
    const total = grid.clientWidth || element.clientWidth || 640;
    return Math.max(200, Math.floor((total - 12 * (columns - 1)) / columns - 8));
  }

  // An optional chart is drawn only when its series has a value (a user no companion reports has none).
  function shown(i) {
    return charts[i][5] !== "optional" || state.data[i][1].some(function (v) { return v !== null && v !== undefined; });
  }

  function draw() {
    state.plots.forEach(function (p) { p.destroy(); });
    state.plots = [];
    state.shown = [];
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    const width = chartWidth();
    charts.forEach(function (spec, i) {
      if (!shown(i)) return;
      const box = el("div", "usermetrics-chart");
      grid.appendChild(box);
      state.shown.push(i);
      state.plots.push(new uPlot(chartOptions(spec[1], spec[2], spec[3], width, height, options.legend !== false), state.data[i], box));
    });
  }

  function load(doc) {
    state.doc = doc;
    state.data = charts.map(function (spec) { return [doc.t.slice(), (doc[spec[0]] || []).slice()]; });
    state.previous = null;
    state.bucket = null;
    Object.keys(buttons).forEach(function (name) {
      buttons[name].setAttribute("aria-pressed", String(name === state.window));
    });
    const stats = doc.stats || {};
    // The requests' words, unless these charts are of something else (the overview's cost).
    status.textContent = options.stats === false ? "" : chartStatusWords(state.window, stats);
    draw();
    if (options.onLoad) options.onLoad(doc, state.window);
  }

  function reload() {
    const url = options.historyUrl + (options.historyUrl.indexOf("?") < 0 ? "?" : "&") +
      "window=" + encodeURIComponent(state.window);
    status.textContent = "Loading…";
    return fetchJson(url).then(load).catch(function (error) { status.textContent = String(error.message || error); });
  }

  const controller = {
    setWindow: function (name) {
      if (WINDOWS.indexOf(name) < 0) throw new Error("unknown window " + name);
      state.window = name;
      return reload();
    },
    reload: reload,
    /** Append one live point: `input` is what `options.sample` reads (a PerUserResourceUsage for
     * a user, a frame's summary for the overview), `timestamp` ISO or epoch seconds. */
    appendLive: function (input, timestamp) {
      if (!state.doc || !input) return;
      const t = typeof timestamp === "number" ? timestamp : parseTime(timestamp) / 1000;
      const prev = state.previous;
      const now = sample(input);
      state.previous = { t: t, sample: now };
      if (!prev || t <= prev.t) return;
      const p = prev.sample;
      let dCount = now.count - p.count;
      let dErrors = now.errors - p.errors;
      let dLatency = now.latency - p.latency;
      if (dCount < 0 || dErrors < 0) {
        // Counters went backwards: a new life (counted from zero), or users that left.
        dCount = now.resets ? now.count : 0;
        dErrors = now.resets ? now.errors : 0;
        dLatency = now.resets ? now.latency : 0;
      }
      // Live traffic goes into buckets of the history's step, so a live point and a
      // recorded one mean the same thing (per minute over one step), not a 2-second spike.
      const step = state.doc.step;
      const end = Math.ceil(t / step) * step;
      let bucket = state.bucket;
      if (!bucket || bucket.end !== end) {
        // When the history's last bucket is this one, it holds traffic recorded before the
        // page loaded: live traffic adds to it (the frames come after the fetch).
        const d0 = state.data[0][0];
        const recorded = d0.length && d0[d0.length - 1] === end;
        bucket = state.bucket = {
          end: end, count: 0, errors: 0, latency: 0, append: !recorded,
          base: recorded ? state.data.map(function (d) { return d[1][d[1].length - 1]; }) : null,
        };
      }
      bucket.count += dCount;
      bucket.errors += dErrors;
      bucket.latency += dLatency;
      const perMin = 60 / step;
      const live = {
        requests: bucket.count * perMin,
        errors: bucket.errors * perMin,
        latency: bucket.count > 0 ? Math.round((bucket.latency / bucket.count) * 100) / 100 : null,
      };
      let gauge = 0;
      const values = charts.map(function (spec, i) {
        if (spec[4] === "gauge") return now.gauges[gauge++];
        const base = bucket.base ? bucket.base[i] : null;
        if (spec[4] === "history") return base; // a new bucket stays empty until the next reload
        if (spec[4] === "latency") return live.latency === null ? base : live.latency;
        return (base || 0) + live[spec[4]];
      });
      const append = bucket.append;
      bucket.append = false;
      const start = end - state.doc.t.length * step;
      state.data.forEach(function (d, i) {
        if (append) {
          d[0].push(end);
          d[1].push(values[i]);
        } else {
          d[1][d[1].length - 1] = values[i];
        }
        while (d[0].length && d[0][0] <= start) { d[0].shift(); d[1].shift(); }
      });
      state.plots.forEach(function (plot, k) { plot.setData(state.data[state.shown[k]]); });
    },
    destroy: function () {
      state.plots.forEach(function (p) { p.destroy(); });
      state.plots = [];
      if (state.stopTheme) state.stopTheme();
      if (resize) resize.disconnect();
    },
  };

  state.stopTheme = onThemeChange(function () { if (state.doc) draw(); });
  const resize = window.ResizeObserver ? new ResizeObserver(function () {
    const width = chartWidth();
    state.plots.forEach(function (p) { if (p.width !== width) p.setSize({ width: width, height: height }); });
  }) : null;
  if (resize) resize.observe(grid);
  reload();
  return controller;
}

/** Whether charts can be drawn: uPlot's script is on the page (the pages load it when the history is on). */
export function available() {
  return typeof window.uPlot === "function";
}
