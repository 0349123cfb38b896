/* view.js — what the list page looks at (page, page size, sort, search, state, window):
 * read from a frame or a query string, written as a query string, compared with a frame.
 */

export var DEFAULT_VIEW = { page: 1, page_size: 100, sort: "-last_activity", q: "", state: "", window: "1h" };
// States the feed cannot serve: ended users live in the history, so that list is a page load.
export var PAGE_LOAD_STATES = ["ended"];

export function viewFromMeta(meta) {
  return {
    page: meta.page,
    page_size: meta.requested_page_size || meta.page_size,
    sort: meta.sort,
    q: meta.q,
    state: meta.state,
    window: meta.window || DEFAULT_VIEW.window,
  };
}

export function viewKey(v) {
  return [v.page, v.page_size, v.sort, v.q, v.state, v.window].join("\u0000");
}

export function viewFromQuery(search) {
  var params = new URLSearchParams(search);
  return {
    page: parseInt(params.get("page") || "1", 10) || 1,
    page_size: parseInt(params.get("page_size") || String(DEFAULT_VIEW.page_size), 10) || DEFAULT_VIEW.page_size,
    sort: params.get("sort") || DEFAULT_VIEW.sort,
    q: params.get("q") || "",
    state: params.get("state") || "",
    window: params.get("window") || DEFAULT_VIEW.window,
  };
}

export function queryOf(v) {
  // Like ViewSpec.as_params: defaults are left out, the order is fixed.
  var params = new URLSearchParams();
  ["page", "page_size", "sort", "q", "state", "window"].forEach(function (key) {
    if (String(v[key]) !== String(DEFAULT_VIEW[key])) params.set(key, String(v[key]));
  });
  var s = params.toString();
  return s ? "?" + s : "?";
}

// Does a frame show the view we asked for (the server may clamp the page or the page size)?
export function frameMatches(meta, view) {
  if (meta.sort !== view.sort || meta.q !== view.q || meta.state !== view.state) return false;
  if ((meta.window || DEFAULT_VIEW.window) !== view.window) return false;
  if ((meta.requested_page_size || meta.page_size) !== view.page_size) return false;
  if (meta.clamped) return true; // a smaller page around the first user of the one we asked for
  return meta.page === view.page || (view.page > meta.pages && meta.page === meta.pages);
}
