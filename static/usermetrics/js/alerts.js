/* alerts.js — the alerts page on the live feed: it watches a one-user page of the list only for
 * what every frame carries (the header's alert count, the sources' and producer's banners, the
 * clock), and says when what fires has changed since the page was loaded.
 */
import { byId } from "./dom.js";

// Started like every page, with (config, feed), it needs neither: the feed itself keeps the
// header's count and the banners; this page only compares what fires with what it was loaded with.
export function startAlerts() {
  const link = byId("um-alerts");
  const loaded = link ? link.dataset.firing + "/" + link.dataset.silenced : "";
  return {
    query: function () {
      return "?page_size=1";
    },
    apply: function (frame) {
      if (!frame.alerts) return;
      byId("um-alerts-changed").hidden = frame.alerts.firing + "/" + frame.alerts.silenced === loaded;
    },
    tick: function () {},
  };
}
