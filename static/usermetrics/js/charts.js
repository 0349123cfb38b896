/*
 * charts.js — the detail page's five history charts and the list's sparklines (uPlot).
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
 *   });
 *   charts.appendLive(usage, timestamp);  // a PerUserResourceUsage from the feed, the frame's timestamp
 *   charts.setWindow("24h");              // also what the built-in window buttons call
 *   charts.destroy();
 *
 *   sparkline(element, values);                      // one row's small activity chart
 *   sparklines(container, sparklinesUrl, windowName) // every [data-sparkline-user] in container
 *   available()                                      // is uPlot on the page (the history is on)?
 *
 * Colours come from the Django admin's CSS variables (--body-fg, --hairline-color, --link-fg,
 * --error-fg ...), read again when the theme changes, so the charts follow light and dark mode.
 */
import { chartStatusWords, parseTime, sparklineTitle } from "./format.js";

export var WINDOWS = ["15m", "1h", "24h", "7d"];

// What the detail page charts: [key in the history JSON, title, unit, colour variable].
var CHARTS = [
  ["requests_per_min", "Requests / min", "req/min", "--link-fg"],
  ["errors_per_min", "Errors / min", "err/min", "--error-fg"],
  ["latency_ms", "Latency (window mean)", "ms", "--secondary"],
  ["in_flight", "In-flight references", "refs", "--accent"],
  ["exit_stack", "Exit stack size", "resources", "--body-quiet-color"],
];

function cssVar(name, fallback) {
  var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

function theme() {
  return {
    fg: cssVar("--body-fg", "#333"),
    quiet: cssVar("--body-quiet-color", "#666"),
    grid: cssVar("--hairline-color", "#e8e8e8"),
    border: cssVar("--border-color", "#ccc"),
  };
}

function el(tag, className, text) {
  var node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Re-run `callback` whenever the admin theme or the system colour scheme changes.
function onThemeChange(callback) {
  var observer = new MutationObserver(callback);
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  if (media && media.addEventListener) media.addEventListener("change", callback);
  return function () {
    observer.disconnect();
    if (media && media.removeEventListener) media.removeEventListener("change", callback);
  };
}

function chartOptions(title, unit, colourVar, width) {
  var t = theme();
  var axis = { stroke: t.quiet, grid: { stroke: t.grid, width: 1 }, ticks: { stroke: t.border, width: 1 } };
  return {
    title: title,
    width: width,
    height: 160,
    cursor: { drag: { x: false, y: false } },
    legend: { show: true },
    scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
    axes: [axis, Object.assign({}, axis, { label: unit, labelSize: 18, size: 50 })],
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

function fetchJson(url) {
  return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
    if (!r.ok) throw new Error("HTTP " + r.status + " for " + url);
    return r.json();
  });
}

/**
 * Render the five history charts of one user into `element` and keep them appending live.
 * options: {historyUrl, window, onLoad}. Returns {setWindow, appendLive, reload, destroy}.
 */
export function mount(element, options) {
  var state = {
    window: options.window || "1h",
    doc: null,
    plots: [],
    data: [],
    previous: null, // the last live usage, to turn counters into rates
    bucket: null, // the live bucket being filled
    stopTheme: null,
  };
  while (element.firstChild) element.removeChild(element.firstChild);
  element.classList.add("usermetrics-charts");

  var bar = el("div", "usermetrics-chart-windows");
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Chart window");
  var buttons = {};
  WINDOWS.forEach(function (name) {
    var button = el("button", "button", name);
    button.type = "button";
    button.addEventListener("click", function () { controller.setWindow(name); });
    buttons[name] = button;
    bar.appendChild(button);
  });
  var status = el("p", "usermetrics-chart-status help");
  var grid = el("div", "usermetrics-chart-grid");
  element.appendChild(bar);
  element.appendChild(status);
  element.appendChild(grid);

  function draw() {
    state.plots.forEach(function (p) { p.destroy(); });
    state.plots = [];
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    var width = Math.max(240, Math.floor((grid.clientWidth || element.clientWidth || 640) - 8));
    CHARTS.forEach(function (spec, i) {
      var box = el("div", "usermetrics-chart");
      grid.appendChild(box);
      state.plots.push(new uPlot(chartOptions(spec[1], spec[2], spec[3], width), state.data[i], box));
    });
  }

  function load(doc) {
    state.doc = doc;
    state.data = CHARTS.map(function (spec) { return [doc.t.slice(), (doc[spec[0]] || []).slice()]; });
    state.previous = null;
    state.bucket = null;
    Object.keys(buttons).forEach(function (name) {
      buttons[name].setAttribute("aria-pressed", String(name === state.window));
    });
    var stats = doc.stats || {};
    status.textContent = chartStatusWords(state.window, stats);
    draw();
    if (options.onLoad) options.onLoad(doc, state.window);
  }

  function reload() {
    var url = options.historyUrl + (options.historyUrl.indexOf("?") < 0 ? "?" : "&") +
      "window=" + encodeURIComponent(state.window);
    status.textContent = "Loading…";
    return fetchJson(url).then(load).catch(function (error) { status.textContent = String(error.message || error); });
  }

  var controller = {
    setWindow: function (name) {
      if (WINDOWS.indexOf(name) < 0) throw new Error("unknown window " + name);
      state.window = name;
      return reload();
    },
    reload: reload,
    /** Append one live point from a feed frame: `usage` is a PerUserResourceUsage, `timestamp` ISO or epoch s. */
    appendLive: function (usage, timestamp) {
      if (!state.doc || !usage) return;
      var t = typeof timestamp === "number" ? timestamp : parseTime(timestamp) / 1000;
      var prev = state.previous;
      state.previous = { t: t, usage: usage };
      if (!prev || t <= prev.t) return;
      var r = usage.requests, p = prev.usage.requests;
      var dCount = r.total_requests - p.total_requests;
      var dErrors = r.error_count - p.error_count;
      var dLatency = r.avg_latency_ms * r.total_requests - p.avg_latency_ms * p.total_requests;
      if (dCount < 0 || dErrors < 0) {
        // A counter went backwards: a new life of this user, counted from zero.
        dCount = r.total_requests;
        dErrors = r.error_count;
        dLatency = r.avg_latency_ms * r.total_requests;
      }
      // Live traffic goes into buckets of the history's step, so a live point and a
      // recorded one mean the same thing (per minute over one step), not a 2-second spike.
      var step = state.doc.step;
      var end = Math.ceil(t / step) * step;
      var bucket = state.bucket;
      if (!bucket || bucket.end !== end) {
        // When the history's last bucket is this one, it holds traffic recorded before the
        // page loaded: live traffic adds to it (the frames come after the fetch).
        var d0 = state.data[0][0];
        var recorded = d0.length && d0[d0.length - 1] === end;
        bucket = state.bucket = {
          end: end, count: 0, errors: 0, latency: 0, append: !recorded,
          base: recorded ? state.data.map(function (d) { return d[1][d[1].length - 1]; }) : null,
        };
      }
      bucket.count += dCount;
      bucket.errors += dErrors;
      bucket.latency += dLatency;
      var perMin = 60 / step;
      var base = bucket.base || [0, 0, null];
      var values = [
        (base[0] || 0) + bucket.count * perMin,
        (base[1] || 0) + bucket.errors * perMin,
        bucket.count > 0 ? Math.round((bucket.latency / bucket.count) * 100) / 100 : base[2],
        usage.session.ref_count,
        usage.memory.exit_stack_size,
      ];
      var append = bucket.append;
      bucket.append = false;
      var start = end - state.doc.t.length * step;
      state.plots.forEach(function (plot, i) {
        var d = state.data[i];
        if (append) {
          d[0].push(end);
          d[1].push(values[i]);
        } else {
          d[1][d[1].length - 1] = values[i];
        }
        while (d[0].length && d[0][0] <= start) { d[0].shift(); d[1].shift(); }
        plot.setData(d);
      });
    },
    destroy: function () {
      state.plots.forEach(function (p) { p.destroy(); });
      state.plots = [];
      if (state.stopTheme) state.stopTheme();
      if (resize) resize.disconnect();
    },
  };

  state.stopTheme = onThemeChange(function () { if (state.doc) draw(); });
  var resize = window.ResizeObserver ? new ResizeObserver(function () {
    var width = Math.max(240, Math.floor((grid.clientWidth || 640) - 8));
    state.plots.forEach(function (p) { if (p.width !== width) p.setSize({ width: width, height: 160 }); });
  }) : null;
  if (resize) resize.observe(grid);
  reload();
  return controller;
}

/** A small activity chart (requests/min) of one list row into `element`; `values` is an array. */
export function sparkline(element, values, options) {
  options = options || {};
  while (element.firstChild) element.removeChild(element.firstChild);
  var xs = values.map(function (_, i) { return i; });
  var t = theme();
  return new uPlot(
    {
      width: options.width || 96,
      height: options.height || 22,
      pxAlign: false,
      cursor: { show: false },
      legend: { show: false },
      scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, max > 0 ? max : 1]; } } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: cssVar("--link-fg", t.fg), width: 1, points: { show: false } }],
    },
    [xs, values],
    element
  );
}

/**
 * Fill every [data-sparkline-user="<user id>"] inside `container` from one request to
 * `sparklinesUrl` (GET /api/sparklines?window=1h&user_id=a&user_id=b ...).
 */
export function sparklines(container, sparklinesUrl, windowName) {
  var cells = Array.prototype.slice.call(container.querySelectorAll("[data-sparkline-user]"));
  if (!cells.length) return Promise.resolve();
  var query = cells.map(function (c) { return "user_id=" + encodeURIComponent(c.getAttribute("data-sparkline-user")); });
  query.push("window=" + encodeURIComponent(windowName || "1h"));
  return fetchJson(sparklinesUrl + "?" + query.join("&")).then(function (doc) {
    cells.forEach(function (cell) {
      var values = doc.users[cell.getAttribute("data-sparkline-user")];
      if (values) sparkline(cell, values);
      cell.setAttribute("title", sparklineTitle(doc.window));
    });
  });
}

/** Whether charts can be drawn: uPlot's script is on the page (the pages load it when the history is on). */
export function available() {
  return typeof window.uPlot === "function";
}
