/* columns.js — the list's column chooser: which columns show, remembered in localStorage; the
 * group headers span what is shown. The server renders the default choice (DEFAULT_HIDDEN in
 * usermetrics/templatetags/usermetrics.py, handed over as config.hidden_columns).
 */
import { byId } from "./dom.js";

const KEY = "usermetrics.list.hidden-columns";

function stored(fallback) {
  try {
    const value = JSON.parse(window.localStorage.getItem(KEY));
    return Array.isArray(value) ? value : fallback;
  } catch {
    return fallback; // storage off or unreadable: the defaults
  }
}

/** Start the chooser of the list page of `config`; returns {apply()} to re-apply after rows change. */
export function startColumns(config) {
  const table = byId("um-table");
  const chooser = byId("um-columns");
  if (!table || !chooser) return { apply: function () {} };
  const boxes = Array.prototype.slice.call(chooser.querySelectorAll("input[type=checkbox]"));
  const hidden = new Set(stored(config.hidden_columns || []));

  function apply() {
    boxes.forEach(function (box) {
      const off = hidden.has(box.value);
      table.classList.toggle("um-hide-" + box.value, off);
      box.checked = !off;
    });
    // A group header spans its shown columns, and goes when none is shown.
    Array.prototype.forEach.call(table.querySelectorAll("thead th.um-group[data-group]"), function (th) {
      const shown = table.querySelectorAll('thead th[data-field][data-group="' + th.dataset.group + '"]');
      const count = Array.prototype.filter.call(shown, function (c) { return !hidden.has(c.dataset.field); }).length;
      th.colSpan = Math.max(1, count);
      th.hidden = count === 0;
    });
  }

  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      if (box.checked) hidden.delete(box.value);
      else hidden.add(box.value);
      try {
        window.localStorage.setItem(KEY, JSON.stringify(Array.from(hidden)));
      } catch {
        /* not remembered, still applied */
      }
      apply();
    });
  });
  chooser.hidden = false; // it needs this script; without it the defaults stand
  apply();
  return { apply: apply };
}
