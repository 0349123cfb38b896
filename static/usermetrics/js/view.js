/* view.js — what the list page looks at (page, page size, sort, search, state, window):
 * read from a frame, written as a query string, compared with a frame, and where each of the
 * list's links leads from it.
 */

export const DEFAULT_VIEW = { page: 1, page_size: 100, sort: "-last_activity", q: "", state: "", window: "1h" };
// States the feed cannot serve: ended users live in the history, so that list is a page load.
export const PAGE_LOAD_STATES = ["ended"];
// Sorts the feed cannot serve: the window's tokens and cost are the history's (selection.WINDOW_SORT_KEYS).
export const PAGE_LOAD_SORTS = ["w_tokens", "w_cost"];

// Whether the page, not the feed, serves a view (its rows stay as the server rendered them).
export function pageLoad(v) {
  return PAGE_LOAD_STATES.indexOf(v.state) >= 0 || PAGE_LOAD_SORTS.indexOf(String(v.sort).replace(/^-/, "")) >= 0;
}

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

export function queryOf(v) {
  // Like ViewSpec.as_params: defaults are left out, the order is fixed.
  const params = new URLSearchParams();
  ["page", "page_size", "sort", "q", "state", "window"].forEach(function (key) {
    if (String(v[key]) !== String(DEFAULT_VIEW[key])) params.set(key, String(v[key]));
  });
  const s = params.toString();
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

// The sort a header of `field` asks for from `sort`: the sorted field turns around; another field
// sorts largest/newest first, names alphabetically (as the server's sort_headers).
export function nextSort(sort, field) {
  if (sort.replace(/^-/, "") === field) return sort.charAt(0) === "-" ? field : "-" + field;
  return field === "user_id" ? field : "-" + field;
}

/**
 * The view a link of the list page leads to from `view`, by what the link changes (`data` is its
 * dataset, as the server renders it): a sort header (data-sort) sorts by its field, a state pill
 * (data-state-value) filters, a page link (data-page) pages, a window link (data-window) sets
 * the rates' window, the clear link (data-clear) drops the search and the filter; the rest of
 * `view` stays. null for any other link.
 *
 * The one rule for both the hrefs and a followed click: from the view the page is on now. A link
 * written from the last frame's view would undo a change made since (a page size chosen a moment
 * before a click).
 */
export function linkView(view, data) {
  if (data.sort !== undefined) return Object.assign({}, view, { sort: nextSort(view.sort, data.sort), page: 1 });
  if (data.stateValue !== undefined) return Object.assign({}, view, { state: data.stateValue, page: 1 });
  if (data.page !== undefined) return Object.assign({}, view, { page: parseInt(data.page, 10) || 1 });
  if (data.window !== undefined) return Object.assign({}, view, { window: data.window, page: 1 });
  if (data.clear !== undefined) return Object.assign({}, view, { q: "", state: "", page: 1 });
  return null;
}
