/* sparklines.js — the small activity charts of the list rows and the sources page (uPlot).
 *
 * Needs uPlot's classic script (the global `uPlot`) on the page, as charts.js does.
 */
import { cssVar, fetchJson, theme } from "./chartbase.js";
import { sparklineTitle } from "./format.js";

/** A small activity chart (requests/min) of one list row into `element`; `values` is an array. */
export function sparkline(element, values, options) {
  options = options || {};
  while (element.firstChild) element.removeChild(element.firstChild);
  const xs = values.map(function (_, i) { return i; });
  const t = theme();
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
  const cells = Array.prototype.slice.call(container.querySelectorAll("[data-sparkline-user]"));
  if (!cells.length) return Promise.resolve();
  const query = cells.map(function (c) { return "user_id=" + encodeURIComponent(c.getAttribute("data-sparkline-user")); });
  query.push("window=" + encodeURIComponent(windowName || "1h"));
  return fetchJson(sparklinesUrl + "?" + query.join("&")).then(function (doc) {
    cells.forEach(function (cell) {
      const values = doc.users[cell.getAttribute("data-sparkline-user")];
      if (values) sparkline(cell, values);
      cell.setAttribute("title", sparklineTitle(doc.window));
    });
  });
}
