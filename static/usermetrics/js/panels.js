/* panels.js — the list page around its rows: summary cards, the sources and their banner, sort
 * headers and filter links, the links to other views, search controls, the paginator, the count
 * line and the empty state.
 */
import { byId, setValue } from "./dom.js";
import { bannerWords, bigNumber, clampedWords, countWords, emptyReason, latencyFit, pagesWords } from "./format.js";
import { linkView, queryOf } from "./view.js";

export function applySummary(summary, animate) {
  Array.prototype.forEach.call(document.querySelectorAll("[data-summary]"), function (node) {
    const key = node.dataset.summary;
    const value = summary[key];
    // Short enough for the card; the exact value on hover (as the server renders it).
    setValue(node, value, key === "avg_latency_ms" ? latencyFit(value) : bigNumber(value), animate);
    node.title = key === "avg_latency_ms" ? value + " ms" : String(value);
  });
}

// The banner above the page: one line per source that is not ok (same words as base.html).
function applyBanner(sources, nowMs) {
  const banner = byId("um-banner");
  const list = byId("um-banner-list");
  if (!banner || !list) return;
  const items = [];
  sources.forEach(function (s) {
    if (s.state === "ok") return;
    const li = document.createElement("li");
    li.dataset.state = s.state;
    const name = document.createElement("strong");
    name.textContent = s.name;
    li.append(name, bannerWords(s, nowMs));
    items.push(li);
  });
  list.replaceChildren.apply(list, items);
  banner.hidden = items.length === 0;
}

// The sources card and the banner; `nowMs` is the server's clock.
export function applySources(sources, nowMs) {
  applyBanner(sources, nowMs);
  const list = byId("um-sources");
  if (!list) return;
  const items = [];
  sources.forEach(function (s) {
    const li = document.createElement("li");
    li.className = "um-source";
    li.dataset.state = s.state;
    li.title = s.last_error || s.kind + " source";
    const dot = document.createElement("span");
    dot.className = "um-dot";
    const name = document.createElement("span");
    name.className = "um-source-name";
    name.textContent = s.name;
    const state = document.createElement("span");
    state.className = "um-source-state";
    state.textContent = s.state;
    const users = document.createElement("span");
    users.className = "um-source-users";
    users.textContent = s.users + " users";
    li.append(dot, name, " ", state, " ", users);
    if (s.state !== "ok" && s.last_error) {
      const error = document.createElement("span");
      error.className = "um-source-error";
      error.textContent = s.last_error;
      li.append(error);
    }
    items.push(li);
  });
  if (!items.length) {
    const none = document.createElement("li");
    none.className = "um-source";
    none.dataset.state = "error";
    none.textContent = "none configured";
    items.push(none);
  }
  list.replaceChildren.apply(list, items);
}

// The list's links to another view of it: sort headers, state pills, page numbers (these three
// re-subscribe when followed, list.js), the rates' windows and the clear link (page loads).
const VIEW_LINKS =
  "#um-table thead a[data-sort], .um-filters a[data-state-value], #um-paginator a[data-page], " +
  ".um-windows a[data-window], #um-empty-clear a[data-clear]";

// Every link to another view, written from `view` (view.js's linkView). Called as soon as the
// view changes, not when its frame comes, so that a middle click or a copied link keeps the change.
export function applyLinks(view) {
  document.querySelectorAll(VIEW_LINKS).forEach(function (link) {
    link.href = queryOf(linkView(view, link.dataset));
  });
}

// The sort headers and the state pills show the frame's view (their hrefs: applyLinks).
export function applyHeaders(meta) {
  const current = meta.sort.replace(/^-/, "");
  const descending = meta.sort.charAt(0) === "-";
  // The sortable headers: the seed fields' (the window's columns are not sortable).
  Array.prototype.forEach.call(document.querySelectorAll("#um-table thead th[data-field]"), function (th) {
    if (!th.querySelector("a[data-sort]")) return;
    th.classList.remove("sorted", "ascending", "descending");
    th.removeAttribute("aria-sort");
    if (th.dataset.field === current) {
      th.classList.add("sorted", descending ? "descending" : "ascending");
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll(".um-filters a"), function (a) {
    const selected = a.dataset.stateValue === meta.state;
    a.classList.toggle("selected", selected);
    if (selected) a.setAttribute("aria-current", "true");
    else a.removeAttribute("aria-current");
  });
}

export function applyControls(meta, view) {
  const q = byId("um-q");
  if (document.activeElement !== q && q.value !== meta.q) q.value = meta.q;
  const state = byId("um-state"); // the hidden input that keeps the state link's choice in the search form
  state.value = meta.state;
  state.disabled = !meta.state;
  byId("um-page-size").value = String(view.page_size);
}

export function applyPaginator(meta, view) {
  const nav = byId("um-paginator");
  const pages = meta.pages;
  const wanted = [1, 2, pages - 1, pages];
  for (let n = meta.page - 2; n <= meta.page + 2; n++) wanted.push(n);
  const numbers = wanted
    .filter(function (x, i) { return x >= 1 && x <= pages && wanted.indexOf(x) === i; })
    .sort(function (x, y) { return x - y; });
  const nodes = [];
  let previous = 0;
  if (pages > 1) {
    numbers.forEach(function (number) {
      if (number - previous > 1) {
        const gap = document.createElement("span");
        gap.className = "um-gap";
        gap.textContent = "…";
        nodes.push(gap);
      }
      let node;
      if (number === meta.page) {
        node = document.createElement("span");
        node.className = "this-page";
        node.setAttribute("aria-current", "page");
      } else {
        node = document.createElement("a");
        node.dataset.page = String(number);
        node.href = queryOf(linkView(view, node.dataset));
      }
      node.textContent = String(number);
      nodes.push(node);
      previous = number;
    });
  }
  const label = document.createElement("span");
  label.className = "um-pages";
  label.id = "um-pages";
  label.textContent = pagesWords(meta.page, pages);
  nodes.push(label);
  if (meta.clamped) {
    const note = document.createElement("span");
    note.className = "um-clamped";
    note.textContent = clampedWords(meta.page_size);
    nodes.push(note);
  }
  nav.replaceChildren.apply(nav, nodes);
}

export function applyCount(meta, frame) {
  byId("um-count").textContent = countWords(meta, frame.users.length, frame.total_active_users);
}

export function applyEmpty(meta, frame) {
  const reason = emptyReason(frame);
  byId("um-empty").hidden = reason === null;
  byId("um-empty-reason").textContent = reason || "";
  byId("um-empty-clear").hidden = !(meta.q || meta.state);
}
