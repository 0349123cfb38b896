/* main.js — the entry point of the live pages: reads the page's um-config (a json_script block)
 * and starts the list, detail, sources or alerts page on the websocket feed.
 *
 * ES modules, no build step, no inline code (the pages run under a strict Content-Security-Policy).
 * Data from the server only ever reaches the DOM as text (textContent, attribute values,
 * URL-encoded hrefs), never as HTML.
 */
import { startActions } from "./actions.js";
import { startAlerts } from "./alerts.js";
import { createFeed } from "./connection.js";
import { startDetail } from "./detail.js";
import { ago, localExact, parseTime } from "./format.js";
import { startList } from "./list.js";
import { startSources } from "./sources.js";

// Relative times move every second between frames (while the page is not paused).
function refreshTimes(nowMs) {
  Array.prototype.forEach.call(document.querySelectorAll("[data-time]"), function (node) {
    const target = node.querySelector(".um-rel") || node;
    const text = ago(parseTime(node.dataset.time), nowMs);
    if (target.textContent !== text) target.textContent = text;
  });
}

// The server writes exact times in UTC; the page reads in the browser's zone (format.js).
function localizeTimes() {
  Array.prototype.forEach.call(document.querySelectorAll("[data-time]"), function (node) {
    const text = localExact(parseTime(node.dataset.time));
    const exact = node.querySelector(".um-exact");
    if (exact) exact.textContent = text;
    else node.title = text;
  });
}

localizeTimes();
startActions(); // the user page's Actions panel: a confirmation before each action's form is sent
const configNode = document.getElementById("um-config");
if (configNode) {
  const config = JSON.parse(configNode.textContent);
  const feed = createFeed(config);
  const starts = { list: startList, detail: startDetail, sources: startSources, alerts: startAlerts };
  const page = starts[config.page](config, feed);
  feed.start({
    query: page.query,
    apply: page.apply,
    tick: function (nowMs) {
      refreshTimes(nowMs);
      page.tick(nowMs);
    },
  });
}
